"""Hot items, pure logic: windows, the event buffer and its drops, the message format."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from schemas import hot
from schemas.http import Choice
from service.core.errors import BrokerUnavailable, ValidationFailed
from service.core.local_cache import LocalCache
from service.hot.aggregate import DURABLE_READS, durable_rows, window_buckets
from service.hot.events import HotEvents


class _Sink:
    def __init__(self, fail: bool = False) -> None:
        self.bodies: list[bytes] = []
        self.fail = fail

    async def publish_hot(self, body: bytes) -> None:
        if self.fail:
            raise BrokerUnavailable
        self.bodies.append(body)


def _sample(registry: CollectorRegistry, outcome: str) -> float:
    value = registry.get_sample_value("volreg_hot_events_total", {"outcome": outcome})
    return value or 0.0


def test_windows() -> None:
    assert window_buckets("5m", 100) == [("m", 100), ("m", 99), ("m", 98), ("m", 97), ("m", 96)]
    assert len(window_buckets("1h", 1000)) == 60
    assert window_buckets("6h", 600) == [("h", 10 - i) for i in range(6)]
    assert window_buckets("batch", 5) == [("b", "")]
    for bad in ("", "0m", "5x", "181m", "97h", "5 m", "batches", "-1h"):
        with pytest.raises(ValidationFailed):
            window_buckets(bad, 100)


async def test_saves_count_choices_by_position_and_publish_once_per_flush() -> None:
    sink, registry = _Sink(), CollectorRegistry()
    events = HotEvents(sink, registry, 1.0, 100, clock=lambda: 120.0)
    choices = [
        Choice(institution="10001", majors=["080901"], accept_adjustment=True),
        Choice(institution="10002", majors=["080901", "080902"], accept_adjustment=False),
    ]
    events.saved("b1", choices)
    events.saved("b1", choices[1:])
    events.read("exam:1")
    assert await events.flush() == 14
    assert await events.flush() == 0  # nothing new, nothing sent
    (message,) = [hot.decode(b) for b in sink.bodies]
    counts = {(r.kind, r.item): r.count for r in message.rows}
    assert counts == {
        (hot.INSTITUTION, "10001"): 1,
        (hot.FIRST_INSTITUTION, "10001"): 1,
        (hot.MAJOR, "10001/080901"): 1,
        (hot.FIRST_MAJOR, "10001/080901"): 1,
        (hot.INSTITUTION, "10002"): 2,
        (hot.FIRST_INSTITUTION, "10002"): 1,
        (hot.MAJOR, "10002/080901"): 2,
        (hot.MAJOR, "10002/080902"): 2,
        (hot.FIRST_MAJOR, "10002/080901"): 1,
        (hot.FIRST_MAJOR, "10002/080902"): 1,
        (hot.READ, "exam:1"): 1,
    }
    assert {r.minute for r in message.rows} == {2}
    assert _sample(registry, "published") == 14


async def test_a_full_buffer_and_a_refused_batch_drop_and_count() -> None:
    sink, registry = _Sink(), CollectorRegistry()
    events = HotEvents(sink, registry, 1.0, 2)
    for key in ("a", "b", "c", "a", "d"):
        events.read(key)
    assert _sample(registry, "dropped") == 2  # c and d found the buffer full; a was counted
    sink.fail = True
    assert await events.flush() == 0
    assert _sample(registry, "dropped") == 5
    sink.fail = False
    assert await events.flush() == 0  # the refused batch is gone, not retried


async def test_off_counts_nothing() -> None:
    registry = CollectorRegistry()
    events = HotEvents(_Sink(), registry, 0, 100)
    events.read("exam:1")
    assert await events.flush() == 0
    assert _sample(registry, "dropped") == 0


def test_durable_rows_keep_choices_and_the_hottest_reads() -> None:
    reads = [hot.HotRow(1, hot.READS_BATCH, hot.READ, f"k{i}", i + 1) for i in range(500)]
    choice = hot.HotRow(1, "b", hot.INSTITUTION, "10001", 1)
    kept = durable_rows([choice, *reads])
    assert choice in kept and len(kept) == 1 + DURABLE_READS
    assert min(r.count for r in kept if r.kind == hot.READ) == 500 - DURABLE_READS + 1


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"v": 2, "id": "x", "rows": []}',
        b'{"v": 1, "rows": []}',
        b'{"v": 1, "id": "x", "rows": {}}',
        b'{"v": 1, "id": "x", "rows": [[1, "b", "inst", "i"]]}',
        b'{"v": 1, "id": "x", "rows": [[0, "b", "inst", "i", 1]]}',
        b'{"v": 1, "id": "x", "rows": [[1, "b", "inst", "i", true]]}',
        b'{"v": 1, "id": "x", "rows": [[1, "", "inst", "i", 1]]}',
        b'{"v": 1, "id": "x", "rows": [[1, "b", "other", "i", 1]]}',
    ],
)
def test_bad_messages(body: bytes) -> None:
    with pytest.raises(hot.HotFormatError):
        hot.decode(body)


async def test_hold_keeps_a_fresh_entry_until_invalidated() -> None:
    now = [0.0]
    cache: LocalCache[int] = LocalCache(10, 5.0, clock=lambda: now[0])

    async def load() -> int:
        return 1

    assert not cache.hold("k", 30.0)  # nothing loaded yet
    await cache.get("k", load)
    assert cache.hold("k", 30.0)
    now[0] = 20.0
    assert cache.stats.loads == 1 and await cache.get("k", load) == 1 and cache.stats.loads == 1
    cache.invalidate("k")
    await cache.get("k", load)
    assert cache.stats.loads == 2
