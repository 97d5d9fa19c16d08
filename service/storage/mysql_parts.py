"""The database as a set of parts: one MySQL database, or one per range of shards behind a
routing database; opening it, and where the tables that are not split by candidate live."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from service.core.errors import DatabaseUnavailable
from service.core.settings import Settings
from service.storage.mysql_db import MySQLDatabase, connect_one
from service.storage.mysql_shards import ShardedDatabase, open_sharded

# What ``open_database`` yields; feature tables take either.
AnyDatabase = MySQLDatabase | ShardedDatabase


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[AnyDatabase]:
    """One database, or one per range of ``mysql_shards`` behind a routing database."""
    if settings.mysql_shards:
        async with open_sharded(settings) as sharded:
            yield sharded
        return
    async with connect_one(settings) as db:
        yield db


def parts_of(db: AnyDatabase) -> list[MySQLDatabase]:
    """Every database: a sharded database lists its parts, a single one is its only part."""
    return db.parts if isinstance(db, ShardedDatabase) else [db]


def home_of(db: AnyDatabase) -> MySQLDatabase:
    """The database holding staff accounts and import jobs: the first of the shard map."""
    return parts_of(db)[0]


async def fetch_all_from_any(db: AnyDatabase, name: str, *args: Any) -> Any:
    """Rows of a catalogue query from the first database that answers (each holds a copy)."""
    error: DatabaseUnavailable | None = None
    for part in parts_of(db):
        try:
            return await part.fetch_all(name, *args)
        except DatabaseUnavailable as exc:
            error = exc
    assert error is not None
    raise error
