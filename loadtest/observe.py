"""What the deployment does behind the API: queue depth over time, MySQL catching up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from service.core.errors import Unavailable
from service.storage.rabbit import RabbitBroker

log = logging.getLogger(__name__)


@runtime_checkable
class VersionStore(Protocol):
    async def form_versions(self, batch: str, candidate_ids: Sequence[str]) -> dict[str, int]: ...


@dataclass
class QueueSamples:
    """(seconds since the scenario started, ready messages over all form queues)."""

    points: list[tuple[float, int]] = field(default_factory=list)

    @property
    def max_depth(self) -> int:
        return max((d for _, d in self.points), default=0)

    def drained_after(self, stop_t: float) -> float | None:
        """Seconds from ``stop_t`` until the depth was 0 and stayed 0, or None if it never
        got there while sampled."""
        drained: float | None = None
        for t, depth in self.points:
            if t < stop_t:
                continue
            if depth == 0 and drained is None:
                drained = t
            elif depth > 0:
                drained = None
        return None if drained is None else max(0.0, drained - stop_t)


@asynccontextmanager
async def sampling(
    broker: RabbitBroker, started: float, every_s: float = 0.2
) -> AsyncIterator[QueueSamples]:
    """Sample the queue depth in a background task while the block runs."""
    samples = QueueSamples()

    async def loop() -> None:
        while True:
            try:
                depths = await broker.queue_depths()
                samples.points.append((time.monotonic() - started, sum(depths.values())))
            except Unavailable as exc:
                log.warning("queue depth not available: %s", exc)
            await asyncio.sleep(every_s)

    task = asyncio.create_task(loop(), name="loadtest-queue-depth")
    try:
        yield samples
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_caught_up(
    db: VersionStore, batch: str, targets: Mapping[str, int], since: float, timeout_s: float
) -> float | None:
    """Poll MySQL until it holds each form at (at least) its target version; seconds from
    ``since`` (a ``time.monotonic()`` value) until it did, or None if not within
    ``timeout_s``."""
    ids = sorted(targets)
    while True:
        try:
            held = await db.form_versions(batch, ids)
            if all(held.get(cid, 0) >= targets[cid] for cid in ids):
                return time.monotonic() - since
        except Unavailable as exc:
            log.warning("MySQL not available while waiting for it to catch up: %s", exc)
        if time.monotonic() - since > timeout_s:
            return None
        await asyncio.sleep(0.1)
