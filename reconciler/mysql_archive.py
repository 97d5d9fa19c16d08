"""MySQL side of reconciliation and warm-up: pages of a shard's forms, version stamps of many
forms at once, and the run reports. Works on one database or on every part of a shard map
(each read asks every part and merges: a part holds only its own shards' rows)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Protocol

from reconciler.model import RunReport, Stamp
from schemas.records import FormKey, FormRecord
from schemas.sql_files import multi_row, query
from service.core.settings import Settings
from service.storage.mysql_db import MySQLDatabase
from service.storage.mysql_parts import open_database
from service.storage.staff_generations import StaffGenerations


class _Sharded(Protocol):
    @property
    def parts(self) -> list[MySQLDatabase]: ...

    async def upsert_forms(self, records: Sequence[FormRecord]) -> None: ...


def _record(row: Any) -> FormRecord:
    return FormRecord(row[0], row[1], int(row[2]), int(row[3]), row[4], bytes(row[5]))


def _order(key: FormKey) -> tuple[str, str]:
    return key.candidate_id, key.batch


def _pairs(keys: Sequence[FormKey]) -> list[str]:
    return [v for k in keys for v in (k.candidate_id, k.batch)]


class FormArchive:
    def __init__(self, db: MySQLDatabase | _Sharded, shards: int) -> None:
        self._db = db
        self._shards = shards
        self._parts = [db] if isinstance(db, MySQLDatabase) else db.parts
        # Admin tokens at /status are checked against these (revocation).
        self.staff_generations = StaffGenerations(self._parts[0])

    async def _all(self, name: str, args: Sequence[Any], statement: str | None = None) -> list[Any]:
        rows: list[Any] = []
        for part in self._parts:
            async with part._cursor() as cur:
                await cur.execute(statement or query(name), args)
                rows += await cur.fetchall()
        return rows

    async def now(self) -> datetime:
        """The database clock (synced_at is stamped by it)."""
        async with self._parts[0]._cursor() as cur:
            await cur.execute(query("reconcile_now"))
            row = await cur.fetchone()
        return row[0]  # type: ignore[no-any-return]

    async def keys_page(self, shard: int, after: FormKey | None, limit: int) -> list[FormKey]:
        a = after or FormKey("", "")
        rows = await self._all(
            "reconcile_forms_page", (shard, a.candidate_id, a.candidate_id, a.batch, limit)
        )
        keys = sorted((FormKey(r[0], r[1]) for r in rows), key=_order)
        return keys[:limit]  # the first ``limit`` over every part, so paging stays exact

    async def changed_page(
        self, shard: int, since: datetime, after: tuple[datetime, FormKey] | None, limit: int
    ) -> list[tuple[datetime, FormKey]]:
        at, key = after or (since, FormKey("", ""))
        args = (shard, since, at, key.candidate_id, key.candidate_id, key.batch, limit)
        rows = await self._all("reconcile_forms_changed", args)
        changed = [(r[2], FormKey(r[0], r[1])) for r in rows]
        return sorted(changed, key=lambda c: (c[0], *_order(c[1])))[:limit]

    async def stamps(self, keys: Sequence[FormKey]) -> dict[FormKey, Stamp]:
        if not keys:
            return {}
        statement = multi_row("reconcile_stamps", len(keys), 2)
        rows = await self._all("reconcile_stamps", _pairs(keys), statement)
        return {FormKey(r[0], r[1]): Stamp(int(r[2]), int(r[3])) for r in rows}

    async def records(self, keys: Sequence[FormKey]) -> list[FormRecord]:
        if not keys:
            return []
        statement = multi_row("reconcile_records", len(keys), 2)
        return [_record(r) for r in await self._all("reconcile_records", _pairs(keys), statement)]

    async def upsert_forms(self, records: Sequence[FormRecord]) -> None:
        """Version-guarded, like the consumers' writes."""
        await self._db.upsert_forms(records)

    async def last_marks(self, shard: int | None) -> tuple[datetime | None, int | None]:
        async with self._parts[0]._cursor() as cur:
            await cur.execute(query("reconcile_last_marks"), (shard,))
            row = await cur.fetchone()
        return (None, None) if row is None else (row[0], row[1])

    async def record_run(self, r: RunReport) -> None:
        args = (
            r.mode,
            r.shard,
            r.outcome,
            r.started_at,
            int(r.duration_s * 1000),
            r.checked,
            r.drifted,
            r.repaired_redis,
            r.repaired_mysql,
            r.unrepaired,
            r.in_grace,
            r.mysql_mark,
            r.redis_mark_us,
            (r.error or "")[:500] or None,
        )
        async with self._parts[0]._cursor() as cur:
            await cur.execute(query("reconcile_record_run"), args)

    async def count_forms(self) -> int:
        return sum(int(r[0]) for r in await self._all("warmup_count", ()))

    async def all_forms(self, page: int) -> AsyncIterator[list[FormRecord]]:
        """Every form with its content, in pages of one shard each."""
        for shard in range(self._shards):
            for part in self._parts:
                after = FormKey("", "")
                while True:
                    async with part._cursor() as cur:
                        args = (shard, after.candidate_id, after.candidate_id, after.batch, page)
                        await cur.execute(query("warmup_forms_page"), args)
                        rows = await cur.fetchall()
                    if not rows:
                        break
                    records = [_record(r) for r in rows]
                    yield records
                    after = records[-1].key


@asynccontextmanager
async def open_archive(settings: Settings) -> AsyncIterator[FormArchive]:
    async with open_database(settings) as db:
        yield FormArchive(db, settings.shards)
