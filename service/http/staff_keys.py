"""Typed application state of the staff, catalogue and import endpoints."""

from __future__ import annotations

from aiohttp import web

from service.catalogue.catalogue import Catalogue
from service.imports.jobs import JobTable
from service.imports.pipeline import Importer
from service.schools.schools import Schools

CATALOGUE = web.AppKey("catalogue", Catalogue)
SCHOOLS = web.AppKey("schools", Schools)
IMPORTER = web.AppKey("importer", Importer)
IMPORT_JOBS: web.AppKey[JobTable] = web.AppKey("import_jobs")
