"""Typed application state of the staff, catalogue and import endpoints."""

from __future__ import annotations

from aiohttp import web

from service.adapters.mysql_imports import ImportJobs
from service.importer import Importer
from service.usecases.catalogue import Catalogue
from service.usecases.schools import Schools

CATALOGUE = web.AppKey("catalogue", Catalogue)
SCHOOLS = web.AppKey("schools", Schools)
IMPORTER = web.AppKey("importer", Importer)
IMPORT_JOBS = web.AppKey("import_jobs", ImportJobs)
