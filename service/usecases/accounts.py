"""Logging in and reading a candidate's exam results."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from service.domain.passwords import Passwords
from service.domain.tokens import Claims, TokenSigner
from service.errors import NotFound, Unauthorized
from service.ports import Database, FormCache
from service.usecases.read_through import read_through

ROLE_CANDIDATE = "candidate"


class Accounts:
    def __init__(
        self,
        db: Database,
        cache: FormCache,
        passwords: Passwords,
        signer: TokenSigner,
        token_ttl_s: int,
    ) -> None:
        self._db = db
        self._cache = cache
        self._passwords = passwords
        self._signer = signer
        self._ttl = token_ttl_s

    async def login_candidate(self, candidate_id: str, password: str) -> tuple[str, Claims]:
        candidate = await self._db.get_candidate(candidate_id)
        stored = candidate.password_hash if candidate else None
        # argon2id costs tens of ms of CPU: never on the event loop.
        ok = await asyncio.to_thread(self._passwords.verify, stored, password)
        if not ok:
            raise Unauthorized("wrong candidate ID or password")
        claims = Claims(candidate_id, ROLE_CANDIDATE, int(time.time()) + self._ttl)
        return self._signer.issue(claims), claims

    async def exam(self, candidate_id: str) -> dict[str, Any]:
        exam = await read_through(
            lambda: self._cache.get_exam(candidate_id),
            lambda: self._db.get_exam(candidate_id),
            lambda value: self._cache.put_exam(candidate_id, value),
        )
        if exam is None:
            raise NotFound("no exam results for this candidate")
        return exam
