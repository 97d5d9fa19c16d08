"""Token revocation by per-account generation: a token names the generation its account had
when it was issued; logging out (or a password, role or school change) increments it, and
tokens of older generations are refused. Checked on every authenticated request from a
per-process copy, then Redis, then MySQL (only on a Redis miss): no database round trip per
request. The API checks every request; the reconciler its admin-only endpoints (staff
tokens only: it has no candidates table)."""

from __future__ import annotations

import contextlib
import logging
from typing import Protocol

from service.core.errors import Unauthorized, Unavailable
from service.core.local_cache import LocalCache
from service.core.tokens import ROLE_CANDIDATE, Claims

log = logging.getLogger(__name__)


class GenerationTable(Protocol):
    """MySQL: the durable generation of one kind of account (candidates, staff)."""

    async def token_generation(self, subject: str) -> int | None: ...

    async def bump_token_generation(self, subject: str) -> None: ...


class GenerationCache(Protocol):
    """Redis: a copy of the generations, with a TTL."""

    async def get_token_generation(self, staff: bool, subject: str) -> int | None: ...

    async def put_token_generation(
        self, staff: bool, subject: str, generation: int, ttl_s: int
    ) -> None: ...


class Revocations:
    def __init__(
        self,
        candidates: GenerationTable | None,
        staff: GenerationTable,
        cache: GenerationCache,
        local: LocalCache[int],
        redis_ttl_s: int,
    ) -> None:
        # None: candidates' tokens are never accepted (the reconciler).
        self._tables = {False: candidates, True: staff}
        self._cache = cache
        self._local = local
        self._redis_ttl_s = redis_ttl_s

    async def require_current(self, claims: Claims) -> None:
        """Unauthorized when the token's account has logged out (or changed) since."""
        try:
            current = await self.current(claims)
        except Unavailable as exc:
            # Redis and MySQL both down: signatures and expiry still hold; logouts since the
            # last known generation are not seen until one is back.
            log.warning("token generation not checked: %s", exc)
            return
        if claims.generation < current:
            raise Unauthorized("token revoked (logged out, or the account changed); log in again")

    async def current(self, claims: Claims) -> int:
        staff = claims.role != ROLE_CANDIDATE
        return await self._local.get(
            _key(staff, claims.subject), lambda: self._load(staff, claims.subject)
        )

    async def revoke(self, claims: Claims) -> int:
        """Every token of the account issued so far stops working; returns the new
        generation. Redis is updated at once, other processes' copies within their TTL."""
        staff = claims.role != ROLE_CANDIDATE
        table = self._table(staff)
        await table.bump_token_generation(claims.subject)
        generation = await table.token_generation(claims.subject) or 0
        await self._cache.put_token_generation(staff, claims.subject, generation, self._redis_ttl_s)
        self._local.invalidate(_key(staff, claims.subject))
        return generation

    async def _load(self, staff: bool, subject: str) -> int:
        try:
            cached = await self._cache.get_token_generation(staff, subject)
        except Unavailable:
            cached = None
        if cached is not None:
            return cached
        generation = await self._table(staff).token_generation(subject) or 0
        # MySQL answered; with Redis down, Redis is filled on a later miss.
        with contextlib.suppress(Unavailable):
            await self._cache.put_token_generation(staff, subject, generation, self._redis_ttl_s)
        return generation

    def _table(self, staff: bool) -> GenerationTable:
        table = self._tables[staff]
        if table is None:
            raise Unauthorized("this token is not accepted here")
        return table


def _key(staff: bool, subject: str) -> str:
    return f"{'s' if staff else 'c'}:{subject}"
