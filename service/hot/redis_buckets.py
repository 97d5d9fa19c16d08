"""Hot-item buckets in Redis: one sorted set per (minute | hour | whole batch, batch, kind),
all under one hash tag. Minute buckets live a few hours, hour buckets a few days, batch
buckets until deleted; read buckets keep only their top entries."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Sequence
from importlib import resources
from typing import Any, TypeVar

import redis.asyncio as redis
from redis.exceptions import RedisClusterException, RedisError

from schemas import hot
from service.core.errors import StoreUnavailable
from service.core.names import Names
from service.core.settings import Settings

T = TypeVar("T")
_ERRORS = (RedisError, RedisClusterException, OSError, TimeoutError)
MINUTE_TTL_S = 4 * 3600
HOUR_TTL_S = 4 * 86400
SEEN_TTL_S = 2 * 86400
READS_KEEP = 2000
# Rows per script call: a call blocks Redis while it runs, so long messages go in chunks.
CHUNK_ROWS = 1000


def _lua(name: str) -> str:
    return resources.files("service.hot").joinpath(f"lua/{name}.lua").read_text()


Bucket = tuple[str, int | str]  # ("m", minute) | ("h", hour) | ("b", "")


class HotBuckets:
    def __init__(self, client: redis.Redis | redis.RedisCluster, names: Names, settings: Settings):
        self._r = client
        self._names = names
        self._timeout_s = settings.redis_timeout_s
        self._apply = client.register_script(_lua("hot_apply"))
        self._top = client.register_script(_lua("hot_top"))

    async def _call(self, aw: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await aw
        except _ERRORS as exc:
            raise StoreUnavailable from exc

    def bucket_key(self, bucket: Bucket, batch: str, kind: str) -> str:
        scope, when = bucket
        if scope == "b":
            return self._names.hot_key("b", batch, kind)
        return self._names.hot_key(scope, when, batch, kind)

    async def apply(self, message_id: str, rows: Sequence[hot.HotRow]) -> int:
        """Fold rows into their minute, hour and batch buckets; returns the chunks applied
        now (chunks seen before are skipped, so a redelivered message counts once)."""
        applied = 0
        for start in range(0, len(rows), CHUNK_ROWS):
            keys, args = self._chunk_args(rows[start : start + CHUNK_ROWS])
            seen = self._names.hot_key("seen", f"{message_id}.{start // CHUNK_ROWS}")
            args = [SEEN_TTL_S, READS_KEEP, *args]
            applied += int(await self._call(self._apply(keys=[seen, *keys], args=args)))
        return applied

    def _chunk_args(self, chunk: Sequence[hot.HotRow]) -> tuple[list[str], list[Any]]:
        """hot_apply.lua's bucket keys, and its ARGV from the bucket count on."""
        keys: dict[str, int] = {}
        specs: list[Any] = []
        row_args: list[Any] = []

        def index(key: str, ttl: int, reads: bool) -> int:
            if key not in keys:
                keys[key] = len(keys) + 1
                specs.extend((ttl, "1" if reads else "0"))
            return keys[key]

        for r in chunk:
            reads = r.kind == hot.READ
            m = index(self.bucket_key(("m", r.minute), r.batch, r.kind), MINUTE_TTL_S, reads)
            h = index(self.bucket_key(("h", r.minute // 60), r.batch, r.kind), HOUR_TTL_S, reads)
            b = index(self.bucket_key(("b", ""), r.batch, r.kind), 0, reads)
            row_args += [m, h, b, r.item, r.count]
        return list(keys), [len(keys), *specs, *row_args]

    async def top(
        self, buckets: Sequence[Bucket], batch: str, kind: str, limit: int
    ) -> list[tuple[str, int]]:
        sources = [self.bucket_key(b, batch, kind) for b in buckets]
        scratch = self._names.hot_key("tmp", uuid.uuid4().hex)
        reply = await self._call(self._top(keys=[scratch, *sources], args=[limit]))
        return [(reply[i].decode(), int(float(reply[i + 1]))) for i in range(0, len(reply), 2)]

    async def reads_over(self, minute: int, threshold: int, limit: int) -> list[str]:
        """Read keys counted at least ``threshold`` times in that minute, hottest first."""
        key = self.bucket_key(("m", minute), hot.READS_BATCH, hot.READ)
        reply: list[bytes] = await self._call(
            self._r.zrevrangebyscore(key, "+inf", threshold, start=0, num=limit)  # type: ignore[arg-type]
        )
        return [k.decode() for k in reply]

    async def is_restored(self) -> bool:
        return bool(await self._call(self._r.exists(self._names.hot_key("restored"))))

    async def mark_restored(self) -> None:
        await self._call(self._r.set(self._names.hot_key("restored"), "1"))
