"""The catalogue — institutions with majors, admission batches with filing windows and
control lines — read through a multi-level cache and published by admins.

Reads: per-process LRU with TTL → Redis → MySQL, one load per key at a time (single flight);
when Redis or MySQL is down the last good value is served. A publish writes MySQL, refreshes
the Redis copy, then broadcasts the changed keys: every process expires its local copies at
once. If the broadcast is lost, local copies expire within ``catalogue_ttl_s``.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any, Protocol

import orjson

from schemas.http import BatchBody, FormBody, InstitutionBody
from service.core.errors import BrokerUnavailable, NotFound, Unavailable, ValidationFailed
from service.core.local_cache import LocalCache
from service.core.ports import Batch
from service.core.read_through import read_through

log = logging.getLogger(__name__)

KEY_INSTITUTIONS = "institutions"
KEY_BATCHES = "batches"
_RELOAD_MIN_S = 1.0


def institution_key(code: str) -> str:
    return f"institution:{code}"


class CatalogueTables(Protocol):
    async def institutions(self) -> list[dict[str, Any]]: ...

    async def institution(self, code: str) -> dict[str, Any] | None: ...

    async def batches(self) -> list[dict[str, Any]]: ...

    async def put_institution(self, code: str, body: InstitutionBody) -> None: ...

    async def put_batch(self, code: str, body: BatchBody) -> None: ...


class CatalogueCopies(Protocol):
    """Redis copies of catalogue entries."""

    async def get_catalogue(self, key: str) -> bytes | None: ...

    async def put_catalogue(self, key: str, blob: bytes, ttl_s: int) -> None: ...


class Invalidations(Protocol):
    async def publish(self, keys: list[str]) -> None: ...


class Catalogue:
    def __init__(
        self,
        tables: CatalogueTables,
        copies: CatalogueCopies,
        local: LocalCache[Any],
        redis_ttl_s: int,
        broadcast: Invalidations | None = None,
    ) -> None:
        self._tables = tables
        self._copies = copies
        self._local = local
        self._redis_ttl_s = redis_ttl_s
        self._broadcast = broadcast
        self.mysql_loads = 0
        self._batches_reloaded_at = -_RELOAD_MIN_S
        # What saves check, derived once from the cached entries: each institution's majors
        # as a set, None for a code the catalogue does not have (so unknown codes cost no
        # lookup each). Valid until the local cache is invalidated or its TTL passes.
        self._offered: dict[str, frozenset[str] | None] = {}
        self._offered_epoch = -1
        self._offered_until = 0.0
        self._batches_of: tuple[object, list[Batch]] | None = None

    # --- Reads
    async def institutions(self) -> list[dict[str, Any]]:
        value: list[dict[str, Any]] = await self._get(KEY_INSTITUTIONS)
        return value

    async def institution(self, code: str) -> dict[str, Any] | None:
        value: dict[str, Any] | None = await self._get(institution_key(code))
        return value

    async def batches(self) -> list[dict[str, Any]]:
        value: list[dict[str, Any]] = await self._get(KEY_BATCHES)
        return value

    async def list_batches(self) -> list[Batch]:
        """The batches' filing windows (what saves check), parsed once per cached value."""
        cached = await self.batches()
        if self._batches_of is None or self._batches_of[0] is not cached:
            parsed = [
                Batch(
                    b["code"],
                    b["name"],
                    datetime.fromisoformat(b["opens_at"]),
                    datetime.fromisoformat(b["closes_at"]),
                    # Copies written before the field existed: the default.
                    bool(b.get("changes_after_submit", True)),
                )
                for b in cached
            ]
            self._batches_of = (cached, parsed)
        return self._batches_of[1]

    async def require_batch(self, code: str) -> Batch:
        """The batch of that code (404 when the catalogue has none, also after a re-read)."""
        for batch in await self.list_batches():
            if batch.code == code:
                return batch
        for batch in await self.reload_batches():
            if batch.code == code:
                return batch
        raise NotFound(f"no admission batch {code!r}")

    def _loader(self, key: str) -> Any:
        if key == KEY_INSTITUTIONS:
            return self._tables.institutions
        if key == KEY_BATCHES:
            return self._tables.batches
        code = key.partition(":")[2]
        return lambda: self._tables.institution(code)

    async def _get(self, key: str) -> Any:
        return await self._local.get(key, lambda: self._from_redis_or_mysql(key))

    async def _from_redis_or_mysql(self, key: str) -> Any:
        async def from_redis() -> Any:
            blob = await self._copies.get_catalogue(key)
            return None if blob is None else orjson.loads(blob)

        async def from_mysql() -> Any:
            self.mysql_loads += 1
            return await self._loader(key)()

        async def refill(value: Any) -> None:
            await self._copies.put_catalogue(key, orjson.dumps(value), self._redis_ttl_s)

        return await read_through(from_redis, from_mysql, refill)

    async def check_choices(self, form: FormBody) -> None:
        """Every chosen institution and major exists: 422 naming each bad one otherwise."""
        offered = self._offered_snapshot()
        problems: list[dict[str, str]] = []
        for i, choice in enumerate(form.choices):
            code = choice.institution
            if code not in offered:
                offered[code] = await self._majors_of(code)
            majors = offered[code]
            if majors is None:
                problems.append(
                    {
                        "path": f"choices[{i}].institution",
                        "message": f"no institution {code} in the catalogue",
                    }
                )
                continue
            problems += [
                {
                    "path": f"choices[{i}].majors[{j}]",
                    "message": f"institution {code} has no major {major}",
                }
                for j, major in enumerate(choice.majors)
                if major not in majors
            ]
        if problems:
            raise ValidationFailed(
                "; ".join(f"{p['path']}: {p['message']}" for p in problems[:5]), details=problems
            )

    def _offered_snapshot(self) -> dict[str, frozenset[str] | None]:
        now = time.monotonic()
        if self._offered_epoch != self._local.epoch or now >= self._offered_until:
            self._offered = {}
            self._offered_epoch = self._local.epoch
            self._offered_until = now + self._local.ttl_s
        return self._offered

    async def _majors_of(self, code: str) -> frozenset[str] | None:
        institution = await self.institution(code)
        if institution is None:
            return None
        return frozenset(m["code"] for m in institution["majors"])

    # --- Publishing
    async def put_institution(self, code: str, body: InstitutionBody) -> dict[str, bool]:
        await self._tables.put_institution(code, body)
        return await self.published([KEY_INSTITUTIONS, institution_key(code)])

    async def put_batch(self, code: str, body: BatchBody) -> dict[str, bool]:
        await self._tables.put_batch(code, body)
        return await self.published([KEY_BATCHES])

    async def reload_batches(self) -> list[Batch]:
        """For a batch code the copies do not know: it may have been created in MySQL since
        (``volreg batch``), so read MySQL again — at most once a second per process."""
        now = time.monotonic()
        if now - self._batches_reloaded_at >= _RELOAD_MIN_S:
            self._batches_reloaded_at = now
            await self._refresh([KEY_BATCHES])
        return await self.list_batches()

    async def _refresh(self, keys: list[str]) -> bool:
        """Reload ``keys`` from MySQL into Redis and expire this process's copies; False if
        a Redis copy could not be refreshed (it expires by its TTL)."""
        refreshed = True
        for key in keys:
            try:
                value = await self._loader(key)()
                await self._copies.put_catalogue(key, orjson.dumps(value), self._redis_ttl_s)
            except Unavailable as exc:
                log.warning("catalogue: Redis copy of %s not refreshed: %s", key, exc)
                refreshed = False
        self.invalidate(keys)
        return refreshed

    async def published(self, keys: list[str]) -> dict[str, bool]:
        """Refresh the Redis copies, expire this process's, tell the others. Reports what
        worked: MySQL holds the change either way, and a publish can be repeated."""
        refreshed = await self._refresh(keys)
        broadcast = self._broadcast is not None
        if self._broadcast is not None:
            try:
                await self._broadcast.publish(keys)
            except BrokerUnavailable as exc:
                log.warning("catalogue: invalidation not broadcast (TTL applies): %s", exc)
                broadcast = False
        return {"redis_refreshed": refreshed, "broadcast": broadcast}

    def invalidate(self, keys: list[str]) -> None:
        for key in keys:
            self._local.invalidate(key)

    def invalidate_all(self) -> None:
        self._local.invalidate_all()
