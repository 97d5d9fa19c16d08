"""Redis side of reconciliation and warm-up: the per-shard change index, version stamps of
many forms in one round trip, pipelined compare-and-set fills, and the run lock."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import redis.asyncio as redis

from reconciler.model import Stamp
from schemas.records import FormKey, FormRecord
from service.core.ids import shard_of
from service.core.names import Names
from service.core.settings import Settings
from service.storage.redis_cache import RedisCache, open_cache

# Forms per commit.lua call in bulk fills: big enough to spare round trips and per-command
# client overhead, small enough not to hold Redis for long (a few ms).
_FILL_CALL = 200
# Delete or extend the lock only while it still holds our token.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class FormIndex(RedisCache):
    """A ``RedisCache`` that also sweeps: every method touches one shard's slot at a time."""

    def __init__(
        self, client: redis.Redis | redis.RedisCluster, names: Names, settings: Settings
    ) -> None:
        super().__init__(client, names, settings)
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)

    async def now_us(self) -> int:
        seconds, micros = await self._call(self._r.time())
        return int(seconds) * 1_000_000 + int(micros)

    def _keys_of(self, members: Sequence[bytes]) -> list[FormKey]:
        return [self._names.form_key_of_member(m.decode()) for m in members]

    async def changed_page(
        self, shard: int, since_us: int, offset: int, limit: int
    ) -> list[FormKey]:
        """Forms of ``shard`` committed with an updated time at or after ``since_us``."""
        members = await self._call(
            self._r.zrange(
                self._names.changes_key(shard),
                since_us,
                "+inf",
                byscore=True,
                offset=offset,
                num=limit,
            )
        )
        return self._keys_of(cast(list[bytes], members))

    async def indexed(self, shard: int, page: int) -> AsyncIterator[list[FormKey]]:
        """Every form of ``shard`` in the index, in pages (ZSCAN: never blocks Redis; a form
        may come twice)."""
        cursor = 0
        while True:
            cursor, items = await self._call(
                self._r.zscan(self._names.changes_key(shard), cursor, count=page)
            )
            if items:
                yield self._keys_of([cast(bytes, member) for member, _ in items])
            if cursor == 0:
                return

    async def stamps(self, keys: Sequence[FormKey]) -> dict[FormKey, Stamp]:
        """Committed version and updated time of each form present (one pipelined trip)."""
        if not keys:
            return {}
        async with self._r.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(self._names.form_key(key), "v", "t")
            replies = await self._call(pipe.execute())
        return {
            key: Stamp(int(v), int(t))
            for key, (v, t) in zip(keys, replies, strict=True)
            if v is not None
        }

    async def fill_many(self, records: Sequence[FormRecord]) -> int:
        """Compare-and-set every record; returns how many applied. One commit.lua call per
        shard and up to ``_FILL_CALL`` forms (a script may touch one slot only), pipelined."""
        if not records:
            return 0
        by_shard: dict[int, list[FormRecord]] = {}
        for record in records:
            by_shard.setdefault(shard_of(record.candidate_id, self._settings.shards), []).append(
                record
            )
        calls = [
            self._commit_args(group[i : i + _FILL_CALL], None, "")
            for group in by_shard.values()
            for i in range(0, len(group), _FILL_CALL)
        ]
        if isinstance(self._r, redis.RedisCluster):
            # The cluster pipeline does not run scripts: one call after the other.
            replies = [await self._call(self._commit(keys=k, args=a)) for k, a in calls]
        else:
            async with self._r.pipeline(transaction=False) as pipe:
                for k, a in calls:
                    await self._commit(keys=k, args=a, client=pipe)
                replies = await self._call(pipe.execute())
        return sum(int(reply[0]) for reply in replies)

    # --- The run lock: one reconcile run at a time across every process.
    async def acquire(self, ttl_s: float) -> str | None:
        token = secrets.token_hex(16)
        ok = await self._call(
            self._r.set(self._names.reconcile_lock, token, nx=True, px=int(ttl_s * 1000))
        )
        return token if ok else None

    async def renew(self, token: str, ttl_s: float) -> bool:
        args: list[Any] = [token, int(ttl_s * 1000)]
        return bool(await self._call(self._renew(keys=[self._names.reconcile_lock], args=args)))

    async def release(self, token: str) -> None:
        await self._call(self._release(keys=[self._names.reconcile_lock], args=[token]))


@asynccontextmanager
async def open_index(settings: Settings, names: Names) -> AsyncIterator[FormIndex]:
    async with open_cache(settings, names) as cache:
        yield FormIndex(cache.client, names, settings)
