"""Where the tables that are not split by candidate live when MySQL is sharded."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any

from service.core.errors import DatabaseUnavailable
from service.storage.mysql_db import MySQLDatabase


def parts_of(db: Any) -> list[MySQLDatabase]:
    """Every database: a sharded database lists its parts, a single one is its only part."""
    parts = getattr(db, "parts", None)
    return list(parts) if parts else [db]


async def wait_all(calls: Iterable[Awaitable[None]]) -> None:
    """Run the calls concurrently and wait for every one; then raise a retryable failure
    first (the caller retries), else the first other failure."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise next((e for e in errors if isinstance(e, DatabaseUnavailable)), errors[0])


def home_of(db: Any) -> MySQLDatabase:
    """The database holding staff accounts and import jobs: the first of the shard map."""
    return parts_of(db)[0]


async def fetch_all_from_any(db: Any, name: str, *args: Any) -> Any:
    """Rows of a catalogue query from the first database that answers (each holds a copy)."""
    error: DatabaseUnavailable | None = None
    for part in parts_of(db):
        try:
            return await part.fetch_all(name, *args)
        except DatabaseUnavailable as exc:
            error = exc
    assert error is not None
    raise error
