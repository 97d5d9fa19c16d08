"""The published catalogue in MySQL: institutions with their majors, admission batches with
their filing windows and control lines. Copied to every database when MySQL is sharded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from schemas.http import BatchBody, InstitutionBody
from schemas.sql_files import multi_row, query
from service.core.ports import Batch
from service.storage.mysql_db import wait_all
from service.storage.mysql_parts import AnyDatabase, fetch_all_from_any, parts_of


class CatalogueTables:
    def __init__(self, db: AnyDatabase) -> None:
        self._db = db

    async def institutions(self) -> list[dict[str, Any]]:
        rows = await fetch_all_from_any(self._db, "list_institutions")
        return [{"code": r[0], "name": r[1]} for r in rows]

    async def institution(self, code: str) -> dict[str, Any] | None:
        rows = await fetch_all_from_any(self._db, "get_institution", code)
        if not rows:
            return None
        majors = await fetch_all_from_any(self._db, "majors_of_institution", code)
        return {
            "code": rows[0][0],
            "name": rows[0][1],
            "majors": [{"code": m[0], "name": m[1]} for m in majors],
        }

    async def batches(self) -> list[dict[str, Any]]:
        """Every batch with its window (ISO local time) and control lines."""
        batches = await fetch_all_from_any(self._db, "list_batches")
        lines: dict[str, list[dict[str, Any]]] = {}
        for code, category, score in await fetch_all_from_any(self._db, "list_control_lines"):
            lines.setdefault(code, []).append({"category": category, "min_score": float(score)})
        return [
            {
                "code": b.code,
                "name": b.name,
                "opens_at": b.opens_at.isoformat(),
                "closes_at": b.closes_at.isoformat(),
                "control_lines": lines.get(b.code, []),
            }
            for b in (Batch(*row) for row in batches)
        ]

    async def put_institution(self, code: str, body: InstitutionBody) -> None:
        """Replace the institution and its majors in one transaction (on every database)."""
        steps: list[tuple[str, Sequence[Any]]] = [
            (multi_row("upsert_institutions", 1, 2), [code, body.name]),
            (query("delete_majors"), [code]),
        ]
        if body.majors:
            args = [v for m in body.majors for v in (code, m.code, m.name)]
            steps.append((multi_row("insert_majors", len(body.majors), 3), args))
        await self._everywhere(steps)

    async def put_institutions(self, items: Sequence[tuple[str, InstitutionBody]]) -> None:
        """Bulk form of :meth:`put_institution` (seeding demo and test catalogues)."""
        for code, body in items:
            await self.put_institution(code, body)

    async def put_batch(self, code: str, body: BatchBody) -> None:
        steps: list[tuple[str, Sequence[Any]]] = [
            (query("upsert_batch"), [code, body.name, body.opens_at, body.closes_at]),
            (query("delete_control_lines"), [code]),
        ]
        if body.control_lines:
            args = [v for c in body.control_lines for v in (code, c.category, c.min_score)]
            steps.append((multi_row("insert_control_lines", len(body.control_lines), 3), args))
        await self._everywhere(steps)

    async def _everywhere(self, steps: list[tuple[str, Sequence[Any]]]) -> None:
        # Wait for every database before reporting a failure: none is left mid-transaction.
        await wait_all(part.transaction(steps) for part in parts_of(self._db))
