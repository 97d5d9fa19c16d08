"""Logging in (candidates, teachers, admins) and reading a candidate's exam results."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Protocol

from service.accounts.guard import LoginGuard
from service.core.errors import NotFound, Unauthorized
from service.core.local_cache import LocalCache
from service.core.passwords import Passwords
from service.core.ports import Database, FormCache
from service.core.read_through import read_through
from service.core.tokens import Claims, TokenSigner

ROLE_CANDIDATE = "candidate"
ROLE_TEACHER = "teacher"
ROLE_ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class StaffAccount:
    username: str
    role: str
    school_code: str
    name: str
    password_hash: str


class StaffStore(Protocol):
    async def get_staff(self, username: str) -> StaffAccount | None: ...


class Accounts:
    def __init__(
        self,
        db: Database,
        cache: FormCache,
        passwords: Passwords,
        signer: TokenSigner,
        token_ttl_s: int,
        staff: StaffStore | None = None,
        exams: LocalCache[dict[str, Any] | None] | None = None,
        guard: LoginGuard | None = None,
    ) -> None:
        self._db = db
        self._cache = cache
        self._passwords = passwords
        self._signer = signer
        self._ttl = token_ttl_s
        self._staff = staff
        # The per-process level of the exam cache (None: Redis → MySQL only).
        self._exams = exams
        self._guard = guard

    async def login_candidate(self, candidate_id: str, password: str) -> tuple[str, Claims]:
        candidate = await self._db.get_candidate(candidate_id)
        stored = candidate.password_hash if candidate else None
        await self._verify(candidate_id, stored, password, "wrong candidate ID or password")
        return self._issue(Claims(candidate_id, ROLE_CANDIDATE, self._expiry()))

    async def login_staff(self, username: str, password: str) -> tuple[str, Claims]:
        account = await self._staff.get_staff(username) if self._staff else None
        stored = account.password_hash if account else None
        await self._verify(username, stored, password, "wrong username or password")
        assert account is not None
        return self._issue(Claims(username, account.role, self._expiry(), account.school_code))

    async def _verify(self, account: str, stored: str | None, password: str, message: str) -> None:
        if self._guard is not None:
            await self._guard.check(account)
        # argon2id costs tens of ms of CPU: never on the event loop. An unknown account is
        # checked against a decoy hash, so timing does not tell which accounts exist.
        if not await asyncio.to_thread(self._passwords.verify, stored, password):
            if self._guard is not None:
                await self._guard.failed(account)
            raise Unauthorized(message)

    def _expiry(self) -> int:
        return int(time.time()) + self._ttl

    def _issue(self, claims: Claims) -> tuple[str, Claims]:
        return self._signer.issue(claims), claims

    async def exam(self, candidate_id: str) -> dict[str, Any]:
        """Per-process LRU (single flight, last good value) → Redis → MySQL."""

        async def redis_then_mysql() -> dict[str, Any] | None:
            return await read_through(
                lambda: self._cache.get_exam(candidate_id),
                lambda: self._db.get_exam(candidate_id),
                lambda value: self._cache.put_exam(candidate_id, value),
            )

        if self._exams is None:
            exam = await redis_then_mysql()
        else:
            exam = await self._exams.get(f"exam:{candidate_id}", redis_then_mysql)
        if exam is None:
            raise NotFound("no exam results for this candidate")
        return exam
