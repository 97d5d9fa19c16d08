"""Hot items on the real servers: events off the save path, the aggregator's buckets in Redis
and minute totals in MySQL, the admins' top lists, hot keys pushed to API processes."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from schemas import hot, urls
from service.core.errors import BrokerUnavailable
from service.core.names import names_of
from service.core.ports import Batch
from service.core.settings import Settings
from service.hot.aggregate import Aggregator
from service.hot.broker import HotBroker
from service.hot.events import HotEvents
from service.main.wiring import open_hot_aggregator
from service.storage.mysql_db import MySQLDatabase
from service.storage.mysql_parts import AnyDatabase, home_of
from service.storage.rabbit import open_broker
from service.storage.redis_cache import open_cache
from tests.conftest import FAST_HOT as FAST
from tests.conftest import ClientFactory
from tests.staff_support import ADMIN, TEACHER, staff_login
from tests.support import DEMO_ID, OTHER_ID, login

Client = TestClient[Any, Any]
HOT_BATCH = "hot-t"


@pytest.fixture(scope="module")
async def hot_batch(db: MySQLDatabase) -> str:
    now = datetime.now()
    await db.upsert_batch(Batch(HOT_BATCH, "Hot", now - timedelta(days=1), now + timedelta(days=9)))
    return HOT_BATCH


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


def _counts(listing: list[dict[str, Any]]) -> dict[str, int]:
    return {entry["item"]: entry["count"] for entry in listing}


def _choices(*institutions: str) -> list[dict[str, Any]]:
    return [
        {"institution": code, "majors": ["080901", "080902"], "accept_adjustment": True}
        for code in institutions
    ]


async def _mysql_totals(db: AnyDatabase, batch: str) -> dict[tuple[str, str], int]:
    rows = await home_of(db).fetch_all("hot_minutes_page", 0, "", "", "", 100_000)
    totals: dict[tuple[str, str], int] = {}
    for _minute, batch_code, kind, item, hits in rows:
        if batch_code == batch:
            totals[(kind, item)] = totals.get((kind, item), 0) + int(hits)
    return totals


async def test_saves_and_reads_reach_the_top_lists(
    make_client: ClientFactory,
    consumer: None,
    db: MySQLDatabase,
    hot_batch: str,
    aggregator: Aggregator,
) -> None:
    api = await make_client(**FAST)
    url = urls.FORM.format(candidate_id=DEMO_ID, batch=hot_batch)
    other_url = urls.FORM.format(candidate_id=OTHER_ID, batch=hot_batch)
    demo, other = await login(api), await login(api, OTHER_ID)
    for body in (_choices("10011", "10012"), _choices("10011", "10013")):
        assert (await api.put(url, json={"choices": body}, headers=demo)).status == 200
    put = await api.put(other_url, json={"choices": _choices("10012", "10011")}, headers=other)
    assert put.status == 200
    for _ in range(4):
        assert (await api.get(urls.CATALOGUE_INSTITUTION.format(code="10077"))).status == 200
    admin = await staff_login(api, ADMIN)

    async def top(window: str) -> dict[str, Any]:
        params = {"batch": hot_batch, "window": window}
        resp = await api.get(urls.ADMIN_HOT, params=params, headers=admin)
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body

    async def arrived() -> bool:
        body = await top("5m")
        reads = _counts(body["read_keys"]).get("institution:10077", 0)
        return reads >= 4 and sum(_counts(body["institutions"]["any_position"]).values()) >= 6

    await _eventually(arrived)
    for window in ("5m", "1h", "batch"):
        listed = await top(window)
        institutions = listed["institutions"]
        assert _counts(institutions["first_choice"]) == {"10011": 2, "10012": 1}, window
        assert _counts(institutions["any_position"]) == {"10011": 3, "10012": 2, "10013": 1}
        assert institutions["any_position"][0]["item"] == "10011"  # hottest first
        majors = _counts(listed["majors"]["any_position"])
        assert majors["10011/080901"] == 3 and majors["10013/080902"] == 1
        assert _counts(listed["majors"]["first_choice"])["10012/080902"] == 1
    totals = await _mysql_totals(db, hot_batch)
    assert totals[(hot.INSTITUTION, "10011")] == 3
    assert totals[(hot.FIRST_INSTITUTION, "10012")] == 1


async def test_a_redelivered_message_counts_once_and_redis_is_rebuilt_from_mysql(
    settings: Settings, db: MySQLDatabase, hot_batch: str
) -> None:
    batch = f"hot-{uuid.uuid4().hex[:6]}"
    minute = int(time.time() // 60)
    rows = (
        hot.HotRow(minute, batch, hot.INSTITUTION, "10021", 5),
        hot.HotRow(minute - 1, batch, hot.INSTITUTION, "10022", 2),
        hot.HotRow(minute, batch, hot.FIRST_INSTITUTION, "10021", 1),
    )
    body = hot.encode(hot.HotMessage(f"test-{uuid.uuid4().hex}", rows))
    names = names_of(settings)
    async with open_hot_aggregator(settings, names) as (aggregator, _, _):
        assert await aggregator.apply(body) is True
        assert await aggregator.apply(body) is False  # redelivered: MySQL and Redis skip it
        expected = {"10021": 5, "10022": 2}
        assert _counts((await aggregator.top(batch, "5m"))["institutions"]["any_position"]) == (
            expected
        )
        assert (await _mysql_totals(db, batch))[(hot.INSTITUTION, "10021")] == 5
        # Redis loses the buckets (and the restore marker): they come back from MySQL.
        async with open_cache(settings, names) as cache:  # a Redis Cluster too
            async for key in cache.client.scan_iter(match=names.hot_key("*"), count=1000):
                await cache.client.delete(key)
        assert await aggregator.restore() > 0
        assert await aggregator.restore() == 0  # marked: a second start replays nothing
        after = await aggregator.top(batch, "batch")
        assert _counts(after["institutions"]["any_position"]) == expected
        assert _counts(after["institutions"]["first_choice"]) == {"10021": 1}
        with pytest.raises(hot.HotFormatError):
            await aggregator.apply(b'{"v": 1, "id": "x", "rows": [[1, "b", "nope", "i", 1]]}')


async def test_hot_keys_are_pushed_into_every_api_process(
    make_client: ClientFactory, consumer: None, aggregator: Aggregator
) -> None:
    first, second = await make_client(**FAST), await make_client(**FAST)
    url = urls.CATALOGUE_INSTITUTION.format(code="10078")
    for _ in range(5):
        assert (await first.get(url)).status == 200

    admins = [await staff_login(api, ADMIN) for api in (first, second)]

    async def held_everywhere() -> bool:
        for api, admin in zip((first, second), admins, strict=True):
            text = await (await api.get(urls.METRICS, headers=admin)).text()
            if 'volreg_hot_keys_pushed_total{outcome="held"}' not in text:
                return False
        return True

    await _eventually(held_everywhere)


@pytest.mark.parametrize(
    ("who", "params", "status"),
    [
        (None, {"batch": HOT_BATCH}, 401),
        ("candidate", {"batch": HOT_BATCH}, 403),
        (TEACHER, {"batch": HOT_BATCH}, 403),
        (ADMIN, {"batch": "no-such-batch"}, 404),
        (ADMIN, {}, 422),
        (ADMIN, {"batch": HOT_BATCH, "window": "5x"}, 422),
        (ADMIN, {"batch": HOT_BATCH, "window": "999m"}, 422),
        (ADMIN, {"batch": HOT_BATCH, "limit": "0"}, 422),
        (ADMIN, {"batch": HOT_BATCH, "window": "batch", "limit": "3"}, 200),
    ],
)
async def test_hot_refusals(
    api: Client, hot_batch: str, who: str | None, params: dict[str, str], status: int
) -> None:
    if who == "candidate":
        headers = await login(api)
    else:
        headers = await staff_login(api, who) if who else {}
    resp = await api.get(urls.ADMIN_HOT, params=params, headers=headers)
    assert resp.status == status, await resp.text()
    if status != 200:
        assert "error" in await resp.json()


async def test_a_full_event_queue_drops_events_and_never_fails_a_save(
    make_client: ClientFactory, consumer: None, settings: Settings
) -> None:
    """The broker refuses events past the queue's bound: the publisher counts them as dropped,
    saves go on."""
    s = dataclasses.replace(settings, queue_prefix=f"{settings.queue_prefix}-full", hot_queue_max=1)
    names = names_of(s)
    async with open_broker(s, names) as broker:
        await broker.wait_connected(10)
        sink = HotBroker(broker, names, s)
        try:
            registry = CollectorRegistry()
            events = HotEvents(sink, registry, 1.0, 100)
            events.read("exam:1")
            assert await events.flush() == 1
            # A quorum queue applies its bound once the message is committed: it may take one
            # more before it refuses. Bounded: at most five more tries.
            refused = False
            for i in range(5):
                events.read(f"exam:{i + 2}")
                events.read(f"exam:{i + 2}")
                if await events.flush() == 0:
                    refused = True
                    break
                await asyncio.sleep(0.2)
            assert refused, "the full queue never refused a batch"
            with pytest.raises(BrokerUnavailable):
                await sink.publish_hot(b"{}")
            dropped = registry.get_sample_value("volreg_hot_events_total", {"outcome": "dropped"})
            assert dropped == 2
        finally:
            await sink.close()
            channel = await broker.connection().channel()
            await channel.queue_delete(names.hot_queue)
            await channel.exchange_delete(names.hot_exchange)
            await channel.close()
    # An API whose event queue the broker refuses outright (declared with other arguments):
    # every batch of events is dropped and counted, every save succeeds.
    api = await make_client(hot_queue_max=1, **FAST)
    headers = await login(api)
    url = urls.FORM.format(candidate_id=DEMO_ID, batch="undergrad-1")
    for i in range(3):
        resp = await api.put(url, json={"choices": _choices(f"{10031 + i}")}, headers=headers)
        assert resp.status == 200, await resp.text()

    admin = await staff_login(api, ADMIN)

    async def counted() -> bool:
        text = await (await api.get(urls.METRICS, headers=admin)).text()
        line = next(
            (ln for ln in text.splitlines() if ln.startswith(_DROPPED_SAMPLE)),
            f"{_DROPPED_SAMPLE} 0",
        )
        return float(line.split()[-1]) >= 9  # 3 saves x (2 institutions + ...) events

    await _eventually(counted)


_DROPPED_SAMPLE = 'volreg_hot_events_total{outcome="dropped"}'
