"""The API side of hot items: saves and reads count their items in a per-process buffer that a
background task publishes about once a second. Nothing here awaits on a request's path; when
the buffer is full or the broker does not take a batch, those events are dropped and counted."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter

from schemas import hot
from service.core.errors import Unavailable
from service.core.names import METRIC_HOT_EVENTS

log = logging.getLogger(__name__)
Slot = tuple[int, str, str, str]  # minute, batch, kind, item


class HotSink(Protocol):
    async def publish_hot(self, body: bytes) -> None:
        """Returns once the broker took the message; raises Unavailable otherwise."""


class Choice(Protocol):
    @property
    def institution(self) -> str: ...

    @property
    def majors(self) -> Sequence[str]: ...


class HotEvents:
    """``flush_s`` 0 turns the events off: ``saved`` and ``read`` return at once."""

    def __init__(
        self,
        sink: HotSink | None,
        registry: CollectorRegistry,
        flush_s: float,
        max_entries: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sink = sink
        self.enabled = sink is not None and flush_s > 0
        self._flush_s = flush_s
        self._max_entries = max_entries
        self._clock = clock
        self._counts: dict[Slot, int] = {}
        self._emitter = f"{socket.gethostname()[:24]}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
        self._seq = 0
        self._task: asyncio.Task[None] | None = None
        events = Counter(METRIC_HOT_EVENTS, "Hot-item events", ["outcome"], registry=registry)
        self._published = events.labels("published")
        self._dropped = events.labels("dropped")

    # --- Called by request handlers: dictionary updates only, never an await.
    def saved(self, batch: str, choices: Sequence[Choice]) -> None:
        if not self.enabled:
            return
        minute = int(self._clock() // 60)
        for position, choice in enumerate(choices):
            institution = choice.institution
            self._add((minute, batch, hot.INSTITUTION, institution))
            if position == 0:
                self._add((minute, batch, hot.FIRST_INSTITUTION, institution))
            for major in choice.majors:
                program = f"{institution}/{major}"
                self._add((minute, batch, hot.MAJOR, program))
                if position == 0:
                    self._add((minute, batch, hot.FIRST_MAJOR, program))

    def read(self, key: str) -> None:
        if not self.enabled:
            return
        self._add((int(self._clock() // 60), hot.READS_BATCH, hot.READ, key[:64]))

    def _add(self, slot: Slot) -> None:
        counts = self._counts
        held = counts.get(slot)
        if held is not None:
            counts[slot] = held + 1
        elif len(counts) < self._max_entries:
            counts[slot] = 1
        else:
            self._dropped.inc()

    # --- The background side.
    async def flush(self) -> int:
        """Publish what was counted since the last flush; returns the events published."""
        counts, self._counts = self._counts, {}
        if not counts or self._sink is None:
            return 0
        self._seq += 1
        rows = tuple(hot.HotRow(*slot, n) for slot, n in counts.items())
        events = sum(counts.values())
        try:
            await self._sink.publish_hot(
                hot.encode(hot.HotMessage(f"{self._emitter}-{self._seq}", rows))
            )
        except Unavailable as exc:
            log.debug("hot events: %d dropped: %s", events, exc)
            self._dropped.inc(events)
            return 0
        self._published.inc(events)
        return events

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            try:
                await self.flush()
            except Exception:  # a bug here must not stop the counting for good
                log.exception("hot events: flush failed")

    async def start(self) -> None:
        if not self.enabled:
            return
        self._task = asyncio.create_task(self._run(), name="hot-events-flush")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        with suppress(Exception):
            await self.flush()  # the last second's counts, if the broker takes them


@asynccontextmanager
async def open_hot_events(
    sink: HotSink | None, registry: CollectorRegistry, flush_s: float, max_entries: int
) -> AsyncIterator[HotEvents]:
    events = HotEvents(sink, registry, flush_s, max_entries)
    await events.start()
    try:
        yield events
    finally:
        await events.close()
