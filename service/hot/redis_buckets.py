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
# A restore's lock lives this long unless one of its steps renews it.
RESTORE_LOCK_MS = 30_000
# Rows per script call: a call blocks Redis while it runs, so long messages go in chunks.
CHUNK_ROWS = 1000


def _lua(name: str) -> str:
    return resources.files("service.hot").joinpath(f"lua/{name}.lua").read_text()


Bucket = tuple[str, int | str]  # ("m", minute) | ("h", hour) | ("b", "")


class NotRestored(Exception):
    """Redis lost the buckets: a live message waits until a restore from MySQL has run."""


class RestoreLost(Exception):
    """Another restore took the lock over (this one stalled past its TTL, or Redis lost it)."""


class HotBuckets:
    def __init__(self, client: redis.Redis | redis.RedisCluster, names: Names, settings: Settings):
        self._r = client
        self._names = names
        self._timeout_s = settings.redis_timeout_s
        self._apply = client.register_script(_lua("hot_apply"))
        self._restore = client.register_script(_lua("hot_restore"))
        self._top = client.register_script(_lua("hot_top"))
        self._restored = names.hot_key("restored")
        self._lock = names.hot_key("restoring")

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
        """Fold a live message's rows into their minute, hour and batch buckets; returns the
        chunks folded now (chunks seen before, or a message a restore covered, are skipped,
        so a redelivered message counts once whichever aggregator gets it). NotRestored
        while the buckets wait for a restore."""
        covered = self._names.hot_key("seen", message_id)
        applied = 0
        for start in range(0, len(rows), CHUNK_ROWS):
            chunk = self._names.hot_key("seen", f"{message_id}.{start // CHUNK_ROWS}")
            done = await self._fold(rows[start : start + CHUNK_ROWS], covered, chunk, "")
            if done == -1:
                raise NotRestored("hot-item buckets not restored from MySQL yet")
            applied += done
        return applied

    async def _fold(self, rows: Sequence[hot.HotRow], covered: str, chunk: str, token: str) -> int:
        keys, args = self._chunk_args(rows)
        keys = [self._restored, covered, chunk, self._lock, *keys]
        args = [SEEN_TTL_S, READS_KEEP, args[0], token, RESTORE_LOCK_MS, *args[1:]]
        return int(await self._call(self._apply(keys=keys, args=args)))

    def _chunk_args(self, chunk: Sequence[hot.HotRow]) -> tuple[list[str], list[Any]]:
        """hot_apply.lua's bucket keys, and the bucket count, their specs and the rows."""
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

    async def claim_pushes(self, keys: Sequence[str], ttl_s: float) -> list[str]:
        """The keys no aggregator pushed within ``ttl_s`` (claimed now for that long)."""
        pipe = self._r.pipeline(transaction=False)
        for key in keys:
            pipe.set(self._names.hot_key("pushed", key), "1", nx=True, px=max(1, int(ttl_s * 1000)))
        replies = await self._call(pipe.execute()) if keys else []
        return [key for key, fresh in zip(keys, replies, strict=True) if fresh]

    async def is_restored(self) -> bool:
        return bool(await self._call(self._r.exists(self._restored)))

    # --- A restore: one at a time (a lock with a token), every step fenced by that token.
    async def begin_restore(self, token: str) -> bool:
        """Take the restore lock; False while another aggregator holds it."""
        return bool(await self._call(self._r.set(self._lock, token, nx=True, px=RESTORE_LOCK_MS)))

    async def wipe(self, token: str) -> int:
        """Delete every hot-item key but the lock: what an abandoned restore left behind (live
        messages are refused until the restore is done, so nothing else is there)."""
        found: list[str] = []
        try:
            async with asyncio.timeout(self._timeout_s * 10):
                async for key in self._r.scan_iter(match=self._names.hot_key("*"), count=1000):
                    found.append(key.decode() if isinstance(key, bytes) else str(key))
        except _ERRORS as exc:
            raise StoreUnavailable from exc
        doomed = [k for k in found if k != self._lock]
        for start in range(0, len(doomed), CHUNK_ROWS):
            await self._step(token, "wipe", doomed[start : start + CHUNK_ROWS])
        return len(doomed)

    async def cover(self, token: str, message_ids: Sequence[str]) -> None:
        """Mark messages whose rows this restore replays: a redelivery of one is skipped."""
        for start in range(0, len(message_ids), CHUNK_ROWS):
            chunk = message_ids[start : start + CHUNK_ROWS]
            await self._step(token, "mark", [self._names.hot_key("seen", m) for m in chunk])

    async def replay(self, token: str, rows: Sequence[hot.HotRow]) -> None:
        for start in range(0, len(rows), CHUNK_ROWS):
            chunk = rows[start : start + CHUNK_ROWS]
            # The marker keys are not read in a restore's fold; any key of the slot will do.
            if await self._fold(chunk, self._restored, self._restored, token) == -2:
                raise RestoreLost("another aggregator took the restore over")

    async def finish_restore(self, token: str) -> None:
        await self._step(token, "done", [self._restored])

    async def _step(self, token: str, step: str, keys: list[str]) -> None:
        args: list[str | int] = [step, token, RESTORE_LOCK_MS, SEEN_TTL_S]
        if int(await self._call(self._restore(keys=[self._lock, *keys], args=args))) == -2:
            raise RestoreLost("another aggregator took the restore over")
