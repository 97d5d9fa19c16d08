"""Staff accounts (teachers, admins) and the teachers' view of their school's candidates."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Sequence
from typing import Any

from service.accounts.login import StaffAccount
from service.storage.mysql_db import MySQLDatabase
from service.storage.mysql_parts import home_of, parts_of
from service.storage.staff_generations import StaffGenerations


class StaffTables(StaffGenerations):
    async def get_staff(self, username: str) -> StaffAccount | None:
        row = await home_of(self._db).fetch_one("get_staff", username)
        return None if row is None else StaffAccount(*row)

    async def upsert_staff(self, accounts: Sequence[StaffAccount]) -> None:
        await home_of(self._db).execute_rows("upsert_staff", len(accounts), 5, _args(accounts))

    async def import_teachers(self, accounts: Sequence[StaffAccount]) -> None:
        """Like upsert_staff, but an existing admin account is left exactly as it is."""
        await home_of(self._db).execute_rows("import_teachers", len(accounts), 5, _args(accounts))

    async def school_page(
        self, school: str, filing: str, batch: str, after: str, limit: int
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` candidates of ``school`` after ``after`` in ID order, each with its
        forms: ``{"candidate_id", "name", "forms": {batch: {"status", "version",
        "updated_us"}}}``. With sharded MySQL every database is asked and the pages merged."""

        async def one(part: MySQLDatabase) -> list[dict[str, Any]]:
            rows = await part.fetch_all(
                "school_candidates", school, after, filing, filing, batch, batch, limit
            )
            page = {r[0]: {"candidate_id": r[0], "name": r[1], "forms": {}} for r in rows}
            if page:
                for cid, code, status, version, updated_us in await part.fetch_rows(
                    "forms_of_candidates", len(page), 1, list(page)
                ):
                    page[cid]["forms"][code] = {
                        "status": status,
                        "version": int(version),
                        "updated_us": int(updated_us),
                    }
            return list(page.values())

        pages = await asyncio.gather(*(one(p) for p in parts_of(self._db)))
        merged = heapq.merge(*pages, key=lambda c: str(c["candidate_id"]))
        return list(merged)[:limit]


def _args(accounts: Sequence[StaffAccount]) -> list[str]:
    return [
        v for a in accounts for v in (a.username, a.role, a.school_code, a.name, a.password_hash)
    ]
