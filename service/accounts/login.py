"""Logging in (candidates, teachers, admins) and reading a candidate's exam results."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from service.accounts.guard import HashQueue, LoginGuard
from service.core.errors import NotFound, Unauthorized
from service.core.local_cache import LocalCache
from service.core.passwords import Passwords
from service.core.ports import Database, FormCache
from service.core.read_through import read_through
from service.core.tokens import ROLE_CANDIDATE as ROLE_CANDIDATE
from service.core.tokens import Claims, TokenSigner

ROLE_TEACHER = "teacher"
ROLE_ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class StaffAccount:
    username: str
    role: str
    school_code: str
    name: str
    password_hash: str
    token_generation: int = 0


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
        hashing: HashQueue | None = None,
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
        self._hashing = hashing

    async def login_candidate(
        self, candidate_id: str, password: str, client: str = ""
    ) -> tuple[str, Claims]:
        async with self._attempt(client, candidate_id):
            candidate = await self._db.get_candidate(candidate_id)
            stored = candidate.password_hash if candidate else None
            await self._verify(stored, password, "wrong candidate ID or password")
        generation = candidate.token_generation if candidate else 0
        return self._issue(Claims(candidate_id, ROLE_CANDIDATE, self._expiry(), "", generation))

    async def login_staff(
        self, username: str, password: str, client: str = ""
    ) -> tuple[str, Claims]:
        async with self._attempt(client, username):
            account = await self._staff.get_staff(username) if self._staff else None
            stored = account.password_hash if account else None
            await self._verify(stored, password, "wrong username or password")
        assert account is not None
        return self._issue(
            Claims(
                username,
                account.role,
                self._expiry(),
                account.school_code,
                account.token_generation,
            )
        )

    @asynccontextmanager
    async def _attempt(self, client: str, account: str) -> AsyncIterator[None]:
        """The limits come first: a refused attempt costs neither MySQL nor argon2. Only a
        wrong password stays counted; a success or a failure of ours is given back."""
        guard = self._guard
        counted = await guard.reserve(client, account) if guard is not None else False
        try:
            yield
        except Unauthorized:
            raise
        except BaseException:
            if counted and guard is not None:
                await guard.succeeded(client, account)
            raise
        if counted and guard is not None:
            await guard.succeeded(client, account)

    async def _verify(self, stored: str | None, password: str, message: str) -> None:
        # argon2id costs tens of ms of CPU: never on the event loop, and through the bounded
        # queue. An unknown account is checked against a decoy hash, so timing does not tell
        # which accounts exist.
        def check() -> bool:
            return self._passwords.verify(stored, password)

        ok = await self._hashing.run(check) if self._hashing else await asyncio.to_thread(check)
        if not ok:
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
