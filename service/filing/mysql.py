"""Filing tables in MySQL: progress counters (summed over every database of a shard map) and
the save history (on each candidate's database)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from schemas.records import FormRecord
from service.storage.mysql_db import MySQLDatabase, wait_all
from service.storage.mysql_parts import AnyDatabase, parts_of
from service.storage.mysql_shards import ShardedDatabase


class FilingTables:
    def __init__(self, db: AnyDatabase) -> None:
        self._db = db

    async def school_counts(self, batch: str, school: str) -> tuple[int, dict[str, int]]:
        candidates = 0
        by_status: dict[str, int] = {}
        for part in parts_of(self._db):
            row = await part.fetch_one("progress_school_candidates", school)
            candidates += int(row[0]) if row else 0
            for status, n in await part.fetch_all("progress_school_forms", batch, school):
                by_status[status] = by_status.get(status, 0) + int(n)
        return candidates, by_status

    async def province_counts(self, batch: str) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        candidates: dict[str, int] = {}
        forms: dict[str, dict[str, int]] = {}
        for part in parts_of(self._db):
            for school, n in await part.fetch_all("progress_candidates"):
                candidates[school] = candidates.get(school, 0) + int(n)
            for school, status, n in await part.fetch_all("progress_forms", batch):
                by_status = forms.setdefault(school, {})
                by_status[status] = by_status.get(status, 0) + int(n)
        return candidates, forms

    # --- Save history.
    def _part(self, candidate_id: str) -> MySQLDatabase:
        db = self._db
        return db.part_of(candidate_id) if isinstance(db, ShardedDatabase) else db

    async def record_saves(self, records: Sequence[FormRecord]) -> None:
        """One multi-row INSERT IGNORE per database (all at once)."""
        groups: dict[int, tuple[MySQLDatabase, list[Any]]] = {}
        for r in records:
            part = self._part(r.candidate_id)
            origin = r.origin
            values = [
                r.candidate_id,
                r.batch,
                r.version,
                r.updated_us,
                r.status,
                origin.client if origin else "",
                origin.request_id if origin else "",
                origin.subject if origin else "",
                origin.role if origin else "",
                r.payload,
            ]
            groups.setdefault(id(part), (part, []))[1].extend(values)
        await wait_all(
            part.execute_rows("history_insert", len(args) // 10, 10, args)
            for part, args in groups.values()
        )

    async def history_page(
        self, candidate_id: str, batch: str, before: int, limit: int
    ) -> list[tuple[Any, ...]]:
        rows = await self._part(candidate_id).fetch_all(
            "history_page", candidate_id, batch, before, limit
        )
        return [tuple(r) for r in rows]
