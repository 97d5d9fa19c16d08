"""Hot keys pushed by the aggregator: each API process loads them through its own read path
(once, not per request) and holds them in its local cache for a short time, so a burst on one
key is served from every process's memory instead of one Redis shard."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from service.core.errors import VolregError
from service.core.names import METRIC_HOT_PUSHED

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PinTarget:
    """Keys starting with ``prefix``: ``load(key)`` fills the local cache, ``hold(key, ttl)``
    keeps the entry."""

    prefix: str
    load: Callable[[str], Awaitable[object]]
    hold: Callable[[str, float], bool]


class HotPins:
    def __init__(self, targets: list[PinTarget], ttl_s: float, registry: CollectorRegistry):
        self._targets = targets
        self._ttl_s = ttl_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._pinned = Counter(
            METRIC_HOT_PUSHED,
            "Hot keys held in this process's cache",
            ["outcome"],
            registry=registry,
        )
        self.held: set[str] = set()

    def on_keys(self, keys: list[str]) -> None:
        """The broadcast's callback (not a coroutine): the loads run as tasks."""
        task = asyncio.create_task(self._pin_all(keys), name="hot-pins")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pin_all(self, keys: list[str]) -> None:
        for key in keys:
            await self.pin(key)

    async def pin(self, key: str) -> bool:
        target = next((t for t in self._targets if key.startswith(t.prefix)), None)
        if target is None:
            self._pinned.labels("not_cacheable").inc()
            return False
        try:
            await target.load(key)
        except VolregError as exc:  # unknown key, or a store down: nothing to hold
            log.debug("hot key %s not loaded: %s", key, exc)
            self._pinned.labels("failed").inc()
            return False
        held = target.hold(key, self._ttl_s)
        self._pinned.labels("held" if held else "failed").inc()
        if held:
            self.held.add(key)
        return held

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
