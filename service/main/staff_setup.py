"""Wires the catalogue (with its invalidation broadcast), the teachers' views and the
importer into an app; a cleanup context entered with the other dependencies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from service.accounts.mysql import StaffTables
from service.catalogue.broadcast import open_broadcast
from service.catalogue.catalogue import Catalogue
from service.catalogue.mysql import CatalogueTables
from service.core.local_cache import LocalCache
from service.http import keys
from service.http.staff_keys import CATALOGUE, IMPORT_JOBS, IMPORTER, SCHOOLS
from service.imports.mysql import ImportJobs
from service.imports.pipeline import Importer, Sinks
from service.schools.schools import Schools
from service.storage.rabbit import RabbitBroker
from service.storage.redis_cache import RedisCache


@dataclass(frozen=True, slots=True)
class StaffParts:
    catalogue: Catalogue
    staff: StaffTables
    exams: LocalCache[dict[str, Any] | None]


@asynccontextmanager
async def open_staff_parts(
    app: web.Application, db: Any, cache: RedisCache, broker: RabbitBroker
) -> AsyncIterator[StaffParts]:
    settings, names = app[keys.SETTINGS], app[keys.NAMES]
    local: LocalCache[Any] = LocalCache(settings.catalogue_local_entries, settings.catalogue_ttl_s)
    exams: LocalCache[dict[str, Any] | None] = LocalCache(
        settings.exam_local_entries, settings.exam_local_ttl_s
    )

    def on_keys(changed: list[str]) -> None:
        for key in changed:
            local.invalidate(key)
            exams.invalidate(key)

    def on_reset() -> None:
        local.invalidate_all()
        exams.invalidate_all()

    async with open_broadcast(
        broker, names, settings.broker_timeout_s, on_keys, on_reset
    ) as broadcast:
        catalogue = Catalogue(
            CatalogueTables(db), cache, local, settings.catalogue_redis_ttl_s, broadcast
        )
        staff = StaffTables(db)
        jobs = ImportJobs(db)
        app[CATALOGUE] = catalogue
        app[SCHOOLS] = Schools(staff, db)
        app[IMPORT_JOBS] = jobs
        app[IMPORTER] = Importer(Sinks(db, cache, staff, jobs, broadcast.publish), settings)
        yield StaffParts(catalogue, staff, exams)
