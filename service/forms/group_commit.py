"""Group commit at the publisher: saves for the same queue share one message and one confirm.

It sits in front of the publisher port, so any broker adapter that can publish a batch gets it.
Each save's ``publish`` returns only after the confirm of the message that carried it, so a
200 still means "fsynced"; a failed or timed-out confirm fails every save of that message.

The window is adaptive (like a database's group commit): while no message of a queue awaits
its confirm, a save goes out at the end of the current event-loop turn, joined only by saves
that arrived in the same turn, so an idle server adds no wait. While a message is in flight,
saves gather until it is confirmed, or until ``max_records``, ``max_bytes`` or ``window_ms``
(measured from the first waiting save) is reached, whichever comes first. Batches therefore
grow with the load (arrival rate times confirm latency) and never wait longer than the window.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from schemas.records import FormRecord
from service.core.errors import BrokerUnavailable
from service.core.metrics import Metrics
from service.core.names import Names
from service.core.ports import BatchPublisher, Publisher
from service.core.settings import Settings

log = logging.getLogger(__name__)

# What closed a batch (the ``reason`` label of the flush counter).
IDLE = "idle"  # nothing of this queue was in flight: no added wait
DRAINED = "drained"  # the message in flight was confirmed
WINDOW = "window"
FULL_COUNT = "count"
FULL_BYTES = "bytes"
CLOSING = "closing"
_FRAME_OVERHEAD = 64  # a record's metadata in the batch envelope, roughly


@dataclass(frozen=True, slots=True)
class GroupPolicy:
    max_records: int = 64
    max_bytes: int = 128 * 1024
    window_ms: float = 2.0
    # When the window passes while this many messages of the queue still await confirms, the
    # batch keeps gathering until one is confirmed (0: no limit, the window alone decides).
    max_in_flight: int = 0


@dataclass(slots=True)
class _Lane:
    """One queue's waiting saves and its messages awaiting confirms."""

    index: int
    pending: list[tuple[FormRecord, asyncio.Future[None]]] = field(default_factory=list)
    pending_bytes: int = 0
    first_at: float = 0.0
    in_flight: int = 0
    timer: asyncio.Handle | None = None
    overdue: bool = False  # the window passed while the pipeline was full


class GroupPublisher:
    """The ``Publisher`` port, grouping saves per queue in front of a ``BatchPublisher``."""

    def __init__(
        self,
        inner: BatchPublisher,
        route: Callable[[str], int],
        policy: GroupPolicy,
        metrics: Metrics | None = None,
    ) -> None:
        self._inner = inner
        self._route = route
        self._policy = policy
        self._window_s = policy.window_ms / 1000
        self._metrics = metrics
        self._lanes: dict[int, _Lane] = {}
        self._sends: set[asyncio.Task[None]] = set()
        self._closed = False

    async def publish(self, record: FormRecord) -> None:
        """Returns once the message carrying ``record`` is confirmed."""
        if self._closed:
            raise BrokerUnavailable("the service is shutting down")
        loop = asyncio.get_running_loop()
        index = self._route(record.candidate_id)
        lane = self._lanes.get(index)
        if lane is None:
            lane = self._lanes[index] = _Lane(index)
        done: asyncio.Future[None] = loop.create_future()
        lane.pending.append((record, done))
        lane.pending_bytes += len(record.payload) + _FRAME_OVERHEAD
        if len(lane.pending) >= self._policy.max_records:
            self._flush(lane, FULL_COUNT)
        elif lane.pending_bytes >= self._policy.max_bytes:
            self._flush(lane, FULL_BYTES)
        elif len(lane.pending) == 1:
            lane.first_at = loop.time()
            if lane.in_flight == 0:
                lane.timer = loop.call_soon(self._flush, lane, IDLE)
            else:
                lane.timer = loop.call_later(self._window_s, self._window_passed, lane)
        await done

    async def ping(self) -> None:
        await self._inner.ping()

    def waiting(self) -> int:
        """Saves gathered for a batch, not yet sent."""
        return sum(len(lane.pending) for lane in self._lanes.values())

    def _window_passed(self, lane: _Lane) -> None:
        lane.timer = None
        limit = self._policy.max_in_flight
        if limit and lane.in_flight >= limit:
            lane.overdue = True  # the next confirm sends it
            return
        self._flush(lane, WINDOW)

    def _flush(self, lane: _Lane, reason: str) -> None:
        if lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None
        lane.overdue = False
        # A save whose request was cancelled meanwhile is not sent: nobody awaits it, and its
        # Redis commit will never happen.
        batch = [(r, f) for r, f in lane.pending if not f.done()]
        waited = asyncio.get_running_loop().time() - lane.first_at
        lane.pending = []
        lane.pending_bytes = 0
        if not batch:
            return
        lane.in_flight += 1
        if self._metrics is not None:
            self._metrics.group_flushes.labels(reason).inc()
            self._metrics.group_records.observe(len(batch))
            self._metrics.group_wait.observe(waited)
        task = asyncio.create_task(self._send(lane, batch), name=f"group-commit-{lane.index}")
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send(
        self, lane: _Lane, batch: list[tuple[FormRecord, asyncio.Future[None]]]
    ) -> None:
        records = [r for r, _ in batch]
        sent = asyncio.get_running_loop().time()
        try:
            # The batch format also for one record: two headers instead of seven (the
            # broker client encodes headers field by field, in Python).
            await self._inner.publish_batch(records)
        except BaseException as exc:
            failure = exc if isinstance(exc, Exception) else BrokerUnavailable()
            for _, done in batch:
                if not done.done():
                    # A copy each: one exception object raised in many tasks would collect
                    # all their tracebacks.
                    done.set_exception(copy.copy(failure))
            if not isinstance(exc, Exception):
                raise
        else:
            if self._metrics is not None:
                self._metrics.confirm.observe(asyncio.get_running_loop().time() - sent)
            for _, done in batch:
                if not done.done():
                    done.set_result(None)
        finally:
            lane.in_flight -= 1
            if lane.pending and (lane.overdue or (lane.in_flight == 0 and lane.timer)):
                self._flush(lane, DRAINED)

    async def close(self) -> None:
        """Send what is waiting and wait for every confirm still outstanding."""
        self._closed = True
        for lane in self._lanes.values():
            if lane.pending:
                self._flush(lane, CLOSING)
        if self._sends:
            await asyncio.gather(*self._sends, return_exceptions=True)


def policy_of(settings: Settings) -> GroupPolicy:
    return GroupPolicy(
        settings.group_max_records,
        settings.group_max_bytes,
        settings.group_window_ms,
        settings.group_max_in_flight,
    )


@asynccontextmanager
async def open_save_publisher(
    settings: Settings, broker: BatchPublisher, names: Names, metrics: Metrics | None = None
) -> AsyncIterator[Publisher]:
    """The publisher saves go through: grouped unless ``group_commit`` is off. On exit it
    sends what waits and awaits the outstanding confirms (graceful shutdown)."""
    if not settings.group_commit or settings.group_max_records <= 1:
        yield broker
        return
    publisher = GroupPublisher(broker, names.queue_index, policy_of(settings), metrics)
    try:
        yield publisher
    finally:
        await publisher.close()
