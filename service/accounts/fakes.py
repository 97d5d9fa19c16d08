"""In-memory fakes of the accounts ports: login attempt counters (``LoginAttempts``) and the
staff table with the teachers' view of a school (``StaffStore``, ``StaffWriter``,
``SchoolTables``), for tests without servers."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from service.accounts.login import StaffAccount
from service.core.errors import DatabaseUnavailable, StoreUnavailable
from service.forms.fakes import InMemoryDatabase


@dataclass
class InMemoryLoginAttempts:
    """As login.lua: per client on one account and on all accounts, a window starting at the
    first attempt counted; check and count in one step (no await in between). As
    login_global.lua: the service's counter (one per fake, as one Redis for all processes)."""

    down: bool = False
    _counts: dict[str, tuple[int, float]] = field(default_factory=dict)

    def _held(self, key: str) -> tuple[int, float]:
        count, expires = self._counts.get(key, (0, 0.0))
        return (count, expires) if time.monotonic() < expires else (0, 0.0)

    async def reserve_login(
        self, client: str, account: str, per_account: int, per_client: int, window_s: int
    ) -> int:
        if self.down:
            raise StoreUnavailable("redis unavailable (in-memory fake set down)")
        keys = [f"{client}|{account}", f"{client}|*"]
        for key, limit in zip(keys, (per_account, per_client), strict=True):
            count, expires = self._held(key)
            if limit > 0 and count >= limit:
                return max(1, math.ceil(expires - time.monotonic()))
        for key in keys:
            count, expires = self._held(key)
            self._counts[key] = (count + 1, expires or time.monotonic() + window_s)
        return 0

    async def refund_login(self, client: str, account: str) -> None:
        if self.down:
            raise StoreUnavailable("redis unavailable (in-memory fake set down)")
        for key in (f"{client}|{account}", f"{client}|*"):
            count, expires = self._held(key)
            if count > 0:
                self._counts[key] = (count - 1, expires)

    async def reserve_global_login(self, limit: int, window_s: int) -> int:
        if self.down:
            raise StoreUnavailable("redis unavailable (in-memory fake set down)")
        count, expires = self._held("*")
        if count >= limit:
            return max(1, math.ceil(expires - time.monotonic()))
        self._counts["*"] = (count + 1, expires or time.monotonic() + window_s)
        return 0


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
        """As ``volreg admin``'s upsert: any change of an account revokes its tokens."""
        self._check()
        for account in accounts:
            held = self.accounts.get(account.username)
            generation = held.token_generation + 1 if held else 0
            self.accounts[account.username] = dataclasses.replace(
                account, token_generation=generation
            )

    async def import_teachers(self, accounts: Sequence[StaffAccount]) -> None:
        """As the teachers import: an admin account is left as it is."""
        self._check()
        for account in accounts:
            held = self.accounts.get(account.username)
            if held is not None and held.role == "admin":
                continue
            generation = held.token_generation if held else 0
            if held and (held.password_hash, held.school_code) != (
                account.password_hash,
                account.school_code,
            ):
                generation += 1
            self.accounts[account.username] = dataclasses.replace(
                account, token_generation=generation
            )

    async def token_generation(self, username: str) -> int | None:
        self._check()
        held = self.accounts.get(username)
        return None if held is None else held.token_generation

    async def bump_token_generation(self, username: str) -> None:
        self._check()
        held = self.accounts.get(username)
        if held is not None:
            self.accounts[username] = dataclasses.replace(
                held, token_generation=held.token_generation + 1
            )

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
