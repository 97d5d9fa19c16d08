"""Per-process LRU with TTL and single-flight loading, serving the last good value when a
reload fails because a dependency is down."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from service.core.errors import Unavailable

V = TypeVar("V")
# After a failed reload the stale value is kept for this long before the next attempt, so a
# dead dependency is not asked again by every request.
_RETRY_STALE_S = 1.0


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    expires: float


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    loads: int = 0
    stale: int = 0


class LocalCache(Generic[V]):
    """``get(key, load)``: a fresh entry is returned as is; otherwise one caller per key runs
    ``load`` and every concurrent caller awaits that same load (no stampede). Invalidated or
    expired entries stay as the last good value until evicted: if ``load`` raises
    :class:`Unavailable`, the stale value is served instead."""

    def __init__(
        self, capacity: int, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._capacity = capacity
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, _Entry[V]] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[V]] = {}
        # Bumped by every invalidation: a load that started before one does not store its
        # (possibly older) result.
        self._epoch = 0
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def epoch(self) -> int:
        """Changes with every invalidation: what a value derived from entries is checked by."""
        return self._epoch

    @property
    def ttl_s(self) -> float:
        return self._ttl_s

    async def get(self, key: str, load: Callable[[], Awaitable[V]]) -> V:
        entry = self._entries.get(key)
        if entry is not None and entry.expires > self._clock():
            self._entries.move_to_end(key)
            self.stats.hits += 1
            return entry.value
        pending = self._inflight.get(key)
        if pending is not None:
            # shield: a waiter that is cancelled must not cancel the load the others await.
            return await asyncio.shield(pending)
        return await self._load(key, load, entry)

    async def _load(self, key: str, load: Callable[[], Awaitable[V]], stale: _Entry[V] | None) -> V:
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        epoch = self._epoch
        try:
            self.stats.loads += 1
            value = await load()
        except Unavailable as exc:
            if stale is None:
                _fail(future, exc)
                raise
            self.stats.stale += 1
            stale.expires = self._clock() + min(self._ttl_s, _RETRY_STALE_S)
            future.set_result(stale.value)
            return stale.value
        except BaseException as exc:
            _fail(future, exc if isinstance(exc, Exception) else Unavailable("load cancelled"))
            raise
        finally:
            del self._inflight[key]
        if epoch == self._epoch:
            self._store(key, value)
        future.set_result(value)
        return value

    def _store(self, key: str, value: V) -> None:
        self._entries[key] = _Entry(value, self._clock() + self._ttl_s)
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def hold(self, key: str, ttl_s: float) -> bool:
        """Keep a fresh entry for at least ``ttl_s`` more (a hot key pushed to every process);
        False when there is none. An invalidation still expires it at once."""
        entry = self._entries.get(key)
        if entry is None or entry.expires <= self._clock():
            return False
        entry.expires = max(entry.expires, self._clock() + ttl_s)
        return True

    def invalidate(self, key: str) -> None:
        """Expire ``key`` now; a key ending in ``*`` expires every key with that prefix.
        The value is kept as the last good one."""
        self._epoch += 1
        if key.endswith("*"):
            prefix = key[:-1]
            entries = [e for k, e in self._entries.items() if k.startswith(prefix)]
        else:
            entries = [e for e in (self._entries.get(key),) if e is not None]
        for entry in entries:
            entry.expires = 0.0

    def invalidate_all(self) -> None:
        self.invalidate("*")


def _fail(future: asyncio.Future[V], exc: BaseException) -> None:
    future.set_exception(exc)
    future.exception()  # retrieved: no "never retrieved" log when nobody else waited
