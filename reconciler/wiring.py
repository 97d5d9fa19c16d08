"""The one place the reconciler opens its adapters: the Redis index and the MySQL archive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from reconciler.mysql_archive import FormArchive, open_archive
from reconciler.redis_index import FormIndex, open_index
from service.core.names import names_of
from service.core.settings import Settings


@asynccontextmanager
async def open_sides(settings: Settings) -> AsyncIterator[tuple[FormIndex, FormArchive]]:
    async with open_index(settings, names_of(settings)) as redis, open_archive(settings) as db:
        yield redis, db
