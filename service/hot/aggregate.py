"""The aggregator (``volreg hot``): folds event messages into Redis buckets and MySQL minute
totals, answers the admins' top lists, and pushes keys read above a threshold to every API
process. A message is acknowledged only once both stores hold it; each store counts a message
once, so redeliveries are harmless."""

from __future__ import annotations

import asyncio
import heapq
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from schemas import hot
from service.core.errors import Unavailable, ValidationFailed
from service.hot.redis_buckets import Bucket

log = logging.getLogger(__name__)
# Read keys persisted per message: reads of a million candidates must not become a million
# MySQL rows a minute; the hottest keys of every process's second are kept.
DURABLE_READS = 200
TOP_DEFAULT = 10
_MAX_MINUTES = 180
_MAX_HOURS = 96
# 1-180m, 1-96h or batch, exactly (the OpenAPI document publishes it).
WINDOW = re.compile(
    r"^(?:([1-9]|[1-9][0-9]|1[0-7][0-9]|180)(m)|([1-9]|[1-8][0-9]|9[0-6])(h)|batch)$"
)
_BACKOFF_MAX_S = 5.0
_PAGE = 5000
_PRUNE_S = 600.0


class HotStore(Protocol):
    async def apply(self, message_id: str, rows: Sequence[hot.HotRow]) -> int: ...

    async def top(
        self, buckets: Sequence[Bucket], batch: str, kind: str, limit: int
    ) -> list[tuple[str, int]]: ...

    async def reads_over(self, minute: int, threshold: int, limit: int) -> list[str]: ...

    async def is_restored(self) -> bool: ...

    async def mark_restored(self) -> None: ...


class HotTotals(Protocol):
    async def add(self, message_id: str, rows: Sequence[hot.HotRow]) -> bool: ...

    async def page(self, after: tuple[int, str, str, str], limit: int) -> list[hot.HotRow]: ...

    async def prune(self) -> None: ...


class KeyPush(Protocol):
    async def publish(self, keys: list[str]) -> None: ...


class Delivery(Protocol):
    @property
    def body(self) -> bytes: ...

    async def ack(self) -> None: ...

    async def reject(self) -> None:
        """Drop it for good (an undecodable message)."""


def window_buckets(window: str, now_minute: int) -> list[Bucket]:
    """``5m`` (the last five minute buckets, this one included), ``1h`` (the last 60 minute
    buckets; from 4h on, hour buckets), ``batch`` (the whole batch); 422 otherwise."""
    match = WINDOW.fullmatch(window)
    if match is None:
        raise _bad_window()
    if window == "batch":
        return [("b", "")]
    count, unit = int(match.group(1) or match.group(3)), match.group(2) or match.group(4)
    minutes = count if unit == "m" else count * 60
    if minutes <= _MAX_MINUTES:
        return [("m", now_minute - i) for i in range(minutes)]
    hour = now_minute // 60
    return [("h", hour - i) for i in range(count)]


def _bad_window() -> ValidationFailed:
    rule = f"1-{_MAX_MINUTES}m, 1-{_MAX_HOURS}h or batch"
    return ValidationFailed(
        f"query.window: {rule}", details=[{"path": "query.window", "message": rule}]
    )


def durable_rows(rows: Sequence[hot.HotRow]) -> list[hot.HotRow]:
    """Every choice row, and the ``DURABLE_READS`` most-read keys."""
    choices = [r for r in rows if r.kind != hot.READ]
    reads = heapq.nlargest(DURABLE_READS, (r for r in rows if r.kind == hot.READ), key=_count)
    return choices + reads


def _count(row: hot.HotRow) -> int:
    return row.count


@dataclass(frozen=True, slots=True)
class Outcome:
    applied: bool
    duplicate: bool = False


class Aggregator:
    def __init__(
        self,
        store: HotStore,
        totals: HotTotals,
        push: KeyPush | None,
        threshold: int,
        key_ttl_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._totals = totals
        self._push = push
        self._threshold = threshold
        self._key_ttl_s = key_ttl_s
        self._clock = clock
        self._pushed: dict[str, float] = {}
        self.applied = 0
        self.rejected = 0

    async def apply(self, body: bytes) -> bool:
        """MySQL first (the durable copy), then Redis. Raises HotFormatError for a message
        that can never be applied, Unavailable while a store is down. False: seen before."""
        message = hot.decode(body)
        fresh = await self._totals.add(message.message_id, durable_rows(message.rows))
        await self._store.apply(message.message_id, message.rows)
        return fresh

    async def restore(self) -> int:
        """Rebuild the Redis buckets from MySQL when Redis has lost them (no marker); returns
        the rows replayed. Run before consuming, by one aggregator."""
        if await self._store.is_restored():
            return 0
        replayed = 0
        after: tuple[int, str, str, str] = (0, "", "", "")
        run = f"restore.{int(self._clock() * 1000)}"
        while True:
            rows = await self._totals.page(after, _PAGE)
            if not rows:
                break
            await self._store.apply(f"{run}.{replayed}", rows)
            replayed += len(rows)
            last = rows[-1]
            after = (last.minute, last.batch, last.kind, last.item)
        await self._store.mark_restored()
        if replayed:
            log.info("hot items: rebuilt the Redis buckets from %d MySQL rows", replayed)
        return replayed

    async def push_hot_keys(self) -> list[str]:
        """Keys read at least ``threshold`` times this minute, not pushed within half their
        TTL, go to every API process."""
        if self._push is None:
            return []
        now = self._clock()
        keys = await self._store.reads_over(int(now // 60), self._threshold, 100)
        due = [k for k in keys if self._pushed.get(k, 0.0) < now - self._key_ttl_s / 2]
        if due:
            await self._push.publish(due)
            for key in due:
                self._pushed[key] = now
        self._pushed = {k: t for k, t in self._pushed.items() if t >= now - self._key_ttl_s}
        return due

    async def top(self, batch: str, window: str, limit: int = TOP_DEFAULT) -> dict[str, Any]:
        now_minute = int(self._clock() // 60)
        buckets = window_buckets(window, now_minute)

        async def listed(batch_code: str, kind: str) -> list[dict[str, Any]]:
            pairs = await self._store.top(buckets, batch_code, kind, limit)
            return [{"item": item, "count": count} for item, count in pairs]

        return {
            "batch": batch,
            "window": window,
            "institutions": {
                "first_choice": await listed(batch, hot.FIRST_INSTITUTION),
                "any_position": await listed(batch, hot.INSTITUTION),
            },
            "majors": {
                "first_choice": await listed(batch, hot.FIRST_MAJOR),
                "any_position": await listed(batch, hot.MAJOR),
            },
            "read_keys": await listed(hot.READS_BATCH, hot.READ),
        }

    async def run(
        self, inbox: asyncio.Queue[Delivery], stop: asyncio.Event, push_interval_s: float
    ) -> None:
        loop = asyncio.get_running_loop()
        next_push = loop.time() + push_interval_s
        next_prune = loop.time()
        while not stop.is_set():
            try:
                delivery: Delivery | None = await asyncio.wait_for(inbox.get(), timeout=0.5)
            except TimeoutError:
                delivery = None
            if delivery is not None:
                await self._handle(delivery, stop)
            if loop.time() >= next_push:
                next_push = loop.time() + push_interval_s
                try:
                    await self.push_hot_keys()
                except Unavailable as exc:
                    log.warning("hot keys not pushed: %s", exc)
            if loop.time() >= next_prune:
                next_prune = loop.time() + _PRUNE_S
                try:
                    await self._totals.prune()
                except Unavailable as exc:
                    log.warning("hot items: applied-message ids not pruned: %s", exc)

    async def _handle(self, delivery: Delivery, stop: asyncio.Event) -> None:
        delay = 0.1
        while True:
            try:
                await self.apply(delivery.body)
            except hot.HotFormatError as exc:
                log.error("hot items: dropping an undecodable message: %s", exc)
                self.rejected += 1
                await _settle(delivery.reject())
                return
            except Unavailable as exc:
                if stop.is_set():
                    return  # unacked: the broker redelivers it
                log.warning("hot items: a store is down, the message waits: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)
                continue
            self.applied += 1
            await _settle(delivery.ack())
            return


async def _settle(call: Any) -> None:
    try:
        await call
    except Unavailable:
        log.warning("broker gone before ack; the message will be redelivered (harmless)")
