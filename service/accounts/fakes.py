"""In-memory fakes of the accounts ports: failed-login counters (``LoginFailures``) and the
staff table with the teachers' view of a school (``StaffStore``, ``StaffWriter``,
``SchoolTables``), for tests without servers."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from service.accounts.login import StaffAccount
from service.core.errors import DatabaseUnavailable, StoreUnavailable
from service.forms.fakes import InMemoryDatabase


@dataclass
class InMemoryLoginFailures:
    """Counts per account; a window starts at the first failure, as in Redis (EXPIRE NX)."""

    down: bool = False
    _counts: dict[str, tuple[int, float]] = field(default_factory=dict)

    async def login_failures(self, account: str) -> int:
        if self.down:
            raise StoreUnavailable("redis unavailable (in-memory fake set down)")
        count, expires = self._counts.get(account, (0, 0.0))
        return count if time.monotonic() < expires else 0

    async def add_login_failure(self, account: str, window_s: int) -> None:
        if self.down:
            raise StoreUnavailable("redis unavailable (in-memory fake set down)")
        count = await self.login_failures(account)
        _, expires = self._counts.get(account, (0, 0.0))
        if count == 0:
            expires = time.monotonic() + window_s
        self._counts[account] = (count + 1, expires)


@dataclass
class InMemoryStaff:
    """Staff accounts by username; school pages read the candidates and forms of ``db``."""

    db: InMemoryDatabase
    down: bool = False
    accounts: dict[str, StaffAccount] = field(default_factory=dict)

    def _check(self) -> None:
        if self.down:
            raise DatabaseUnavailable("mysql unavailable (in-memory fake set down)")

    async def get_staff(self, username: str) -> StaffAccount | None:
        self._check()
        return self.accounts.get(username)

    async def upsert_staff(self, accounts: Sequence[StaffAccount]) -> None:
        self._check()
        for account in accounts:
            self.accounts[account.username] = account

    async def school_page(
        self, school: str, filing: str, batch: str, after: str, limit: int
    ) -> list[dict[str, Any]]:
        """As the ``school_candidates`` query: ID order after ``after``; ``filing`` '' all,
        'filed' or 'unfiled' (a form in ``batch``, or in any batch when it is '')."""
        self._check()
        page: list[dict[str, Any]] = []
        for cid in sorted(c for c, row in self.db.candidates.items() if row.school_code == school):
            if cid <= after:
                continue
            forms = {
                key.batch: {
                    "status": record.status,
                    "version": record.version,
                    "updated_us": record.updated_us,
                }
                for key, record in sorted(self.db.forms.items(), key=lambda kv: kv[0].batch)
                if key.candidate_id == cid
            }
            if filing and (filing == "filed") != any(not batch or b == batch for b in forms):
                continue
            page.append({"candidate_id": cid, "name": self.db.candidates[cid].name, "forms": forms})
            if len(page) == limit:
                break
        return page
