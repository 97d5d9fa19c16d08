"""Group commit at the publisher, against the real RabbitMQ, Redis and MariaDB: the batching
decision, the batch format end to end, a bad record parked alone, a failed confirm."""

from __future__ import annotations

import asyncio
import dataclasses
import struct
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import aio_pika
import pytest
from aiohttp.test_utils import TestClient

from schemas import messages
from schemas.http import parse_form
from schemas.records import STATUS_SAVED, FormKey, FormRecord
from service.core import codec
from service.core import names as metric_names
from service.core.ids import make_id
from service.core.metrics import Metrics
from service.core.names import Names, names_of
from service.core.passwords import Passwords
from service.core.settings import Settings
from service.forms.group_commit import (
    DRAINED,
    FULL_COUNT,
    IDLE,
    WINDOW,
    GroupPolicy,
    GroupPublisher,
    policy_of,
)
from service.http import keys
from service.storage.mysql_db import MySQLDatabase
from service.storage.rabbit import REASON_HEADER, RabbitBroker
from service.storage.redis_cache import RedisCache
from tests.conftest import ClientFactory
from tests.harness import Harness, isolated
from tests.proxy import Proxy
from tests.support import OPEN_BATCH, PASSWORD, choices, form_url, login

Client = TestClient[Any, Any]


def same_queue_keys(names: Names, count: int, area: int = 520102) -> list[FormKey]:
    """``count`` forms whose candidates all route to queue 0."""
    found: list[FormKey] = []
    serial = 0
    while len(found) < count:
        candidate = make_id(area, "20070909", serial)
        serial += 1
        if names.queue_index(candidate) == 0:
            found.append(FormKey(candidate, OPEN_BATCH))
    return found


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` (a metric the code under test updates) until it holds."""
    async with asyncio.timeout(timeout):
        for _ in iter(int, 1):
            if condition():
                return
            await asyncio.sleep(0.01)


def flushes(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(metric_names.METRIC_GROUP_FLUSHES, {"reason": reason})
    return value or 0.0


def records_histogram(metrics: Metrics) -> tuple[float, float]:
    """(messages published, records they carried)."""
    count, total = (
        metrics.registry.get_sample_value(f"{metric_names.METRIC_GROUP_RECORDS}_{k}") or 0.0
        for k in ("count", "sum")
    )
    return count, total


class HeldBroker:
    """The real broker, with every publish held until the test opens the gate (so later
    saves find a message in flight, as they do under load)."""

    def __init__(self, inner: RabbitBroker) -> None:
        self.inner = inner
        self.reached = asyncio.Event()
        self.gate = asyncio.Event()

    async def _hold(self) -> None:
        self.reached.set()
        await self.gate.wait()

    async def publish(self, record: FormRecord) -> None:
        await self._hold()
        await self.inner.publish(record)

    async def publish_batch(self, records: Sequence[FormRecord]) -> None:
        await self._hold()
        await self.inner.publish_batch(records)

    async def ping(self) -> None:
        await self.inner.ping()


async def _save(harness: Harness, key: FormKey, salt: int) -> int:
    form = parse_form({"choices": choices(1 + salt % 4, salt)})
    return (await harness.forms.save(key, form, None, datetime.now())).version


async def test_a_single_save_on_an_idle_server_goes_at_once_alone(
    settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    """The window would hold a save for a minute; with nothing in flight it must not apply."""
    metrics = Metrics()
    policy = GroupPolicy(max_records=64, window_ms=60_000)
    names = names_of(settings)

    def group(broker: RabbitBroker) -> GroupPublisher:
        return GroupPublisher(broker, names.queue_index, policy, metrics)

    async with isolated(settings, db, cache, group) as harness:
        key = same_queue_keys(names, 1, area=520103)[0]
        async with asyncio.timeout(10):  # far below the window
            version = await _save(harness, key, 1)
        assert flushes(metrics, IDLE) == 1
        assert flushes(metrics, WINDOW) == flushes(metrics, DRAINED) == 0
        assert records_histogram(metrics) == (1, 1)
        [delivery] = await harness.take(1)
        assert delivery.headers["x-schema"] == messages.BATCH_SCHEMA_VERSION
        assert delivery.headers["x-records"] == 1
        await harness.writer.apply([delivery])
        assert (await db.get_form(key)) is not None
        assert (await cache.read(key)) is not None
        assert (await cache.read(key)).version == version  # type: ignore[union-attr]


async def test_saves_arriving_while_a_message_is_in_flight_share_one_message(
    settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    """Ten saves (two of them for the same form) gather behind a held message and travel as
    one batch; each is answered after its confirm, and MySQL ends equal to Redis per form."""
    metrics = Metrics()
    policy = GroupPolicy(max_records=10, window_ms=60_000)
    names = names_of(settings)
    holder: list[HeldBroker] = []

    def group(broker: RabbitBroker) -> GroupPublisher:
        holder.append(HeldBroker(broker))
        return GroupPublisher(holder[0], names.queue_index, policy, metrics)

    async with isolated(settings, db, cache, group) as harness:
        held = holder[0]
        keys_ = same_queue_keys(names, 10, area=520104)
        first = asyncio.create_task(_save(harness, keys_[0], 0))
        await asyncio.wait_for(held.reached.wait(), 10)
        batch_keys = [*keys_[1:], keys_[1]]  # keys_[1] twice: the newer version must win
        rest = [asyncio.create_task(_save(harness, k, i + 1)) for i, k in enumerate(batch_keys)]
        await until(lambda: flushes(metrics, FULL_COUNT) == 1)  # the tenth closes the batch
        assert not any(t.done() for t in rest), "answered before their confirm"
        held.gate.set()
        async with asyncio.timeout(10):
            versions = await asyncio.gather(first, *rest)
        assert flushes(metrics, IDLE) == 1 and flushes(metrics, FULL_COUNT) == 1
        assert records_histogram(metrics) == (2, 11)

        # Both were in flight at once, so their order does not matter.
        deliveries = await harness.take(2)
        assert sorted(d.headers["x-records"] for d in deliveries) == [1, 10]
        await harness.writer.apply(deliveries)
        await harness.assert_no_more()
        for key in keys_:
            in_redis, in_mysql = await cache.read(key), await db.get_form(key)
            assert in_redis is not None and in_mysql is not None
            assert in_mysql == in_redis
        assert (await db.get_form(keys_[1])).version == max(versions[1], versions[-1])  # type: ignore[union-attr]


def _bad_frame(record: FormRecord) -> bytes:
    """A frame whose metadata carries a negative version."""
    meta = f'["{record.candidate_id}","{record.batch}",-5,1,"saved"]'.encode()
    return b"".join(
        (struct.pack(">H", len(meta)), meta, struct.pack(">I", len(record.payload)), record.payload)
    )


async def test_one_bad_record_in_a_batch_is_dead_lettered_alone_and_the_rest_applied(
    settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    async with isolated(settings, db, cache) as harness:
        names = names_of(harness.settings)
        k1, k2, k3, k4 = same_queue_keys(names, 4, area=520105)
        good1 = FormRecord(k1.candidate_id, k1.batch, 41, 41, STATUS_SAVED, codec.pack([1]))
        corrupt = FormRecord(k2.candidate_id, k2.batch, 42, 42, STATUS_SAVED, b"\x1f\x8bnot-gzip")
        good2 = FormRecord(k3.candidate_id, k3.batch, 43, 43, STATUS_SAVED, codec.pack([3]))
        badmeta = FormRecord(k4.candidate_id, k4.batch, 44, 44, STATUS_SAVED, codec.pack([4]))
        await harness.broker.publish_batch([good1, corrupt, good2])
        _, body = messages.encode_batch([good1])
        crafted = body + _bad_frame(badmeta)
        channel = await harness.broker.connection().channel()
        exchange = await channel.get_exchange(names.exchange)
        await exchange.publish(
            aio_pika.Message(crafted, headers=messages.batch_headers(2)), routing_key="0"
        )
        await harness.writer.apply(await harness.take(2))
        await harness.assert_no_more()  # both batch messages acked
        assert await db.get_form(k1) == good1
        assert await db.get_form(k3) == good2
        assert await db.get_form(k2) is None and await db.get_form(k4) is None

        dlq = await channel.get_queue(names.dead_letter_queue)
        parked = []
        for _ in range(2):
            message = await dlq.get(timeout=5, fail=True)
            assert message is not None
            parked.append((str(message.headers[REASON_HEADER]), message.headers, message.body))
            await message.ack()
        assert await dlq.get(fail=False) is None
        await channel.close()
        by_reason = {("gzip" in r, "version" in r): (h, b) for r, h, b in parked}
        headers, body = by_reason[(True, False)]  # the corrupt payload, alone
        [part] = messages.decode_parts(headers, body)
        assert part.record == corrupt
        headers, body = by_reason[(False, True)]  # the bad metadata, alone, bytes untouched
        assert body == _bad_frame(badmeta) and headers["x-records"] == 1


async def _new_candidate(db: MySQLDatabase, settings: Settings, serial: int) -> str:
    candidate = make_id(520106, "20070101", serial)
    hashed = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib).hash(PASSWORD)
    await db.upsert_candidates([(candidate, "Group", "110105001", hashed)])
    return candidate


@pytest.mark.parametrize("failure", ["connection-lost", "confirm-timeout"])
async def test_a_batch_whose_confirm_fails_answers_503_to_every_save_and_shows_none(
    make_client: ClientFactory,
    consumer: None,
    settings: Settings,
    db: MySQLDatabase,
    cache: RedisCache,
    broker_proxy: Proxy,
    failure: str,
) -> None:
    candidate = await _new_candidate(db, settings, 1 if failure == "connection-lost" else 2)
    client = await make_client(
        amqp_url=broker_proxy.url(settings.amqp_url),
        broker_timeout_s=1.5,
        group_max_records=8,
        group_window_ms=60_000,
    )
    assert client.app is not None
    metrics = client.app[keys.METRICS]
    headers = await login(client, candidate)
    url = form_url(candidate)
    resp = await client.put(url, json={"choices": choices(2, 1)}, headers=headers)
    assert resp.status == 200, await resp.text()
    before = (await resp.json())["version"]
    idle_before = flushes(metrics, IDLE)

    broker_proxy.stall()
    lone = asyncio.create_task(client.put(url, json={"choices": choices(2, 2)}, headers=headers))
    await until(lambda: flushes(metrics, IDLE) > idle_before)  # in flight, confirm held back
    batch = [
        asyncio.create_task(client.put(url, json={"choices": choices(3, s)}, headers=headers))
        for s in range(10, 18)
    ]
    await until(lambda: flushes(metrics, FULL_COUNT) == 1)  # the eight gathered into one
    if failure == "connection-lost":
        await broker_proxy.cut()
    answers = await asyncio.gather(lone, *batch)
    assert [r.status for r in answers] == [503] * 9
    for r in answers:
        # Sent, but never confirmed: the outcome is unknown, so the answer says so (a retry
        # with the same Idempotency-Key gets the first result).
        assert (await r.json())["error"]["code"] == "broker_unconfirmed"
    assert records_histogram(metrics)[1] - records_histogram(metrics)[0] == 7  # one batch of 8
    in_redis = await cache.read(FormKey(candidate, OPEN_BATCH))
    assert in_redis is not None and in_redis.version == before
    broker_proxy.unstall()


def test_group_policy_follows_the_settings() -> None:
    s = dataclasses.replace(Settings(), group_max_records=5, group_max_bytes=7, group_window_ms=1.5)
    assert policy_of(s) == GroupPolicy(5, 7, 1.5, 0)


async def test_with_a_full_pipeline_the_batch_waits_for_a_confirm_not_the_window(
    settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    """max_in_flight=1: saves arriving behind an unconfirmed message gather past the window
    and go together as soon as it is confirmed."""
    metrics = Metrics()
    policy = GroupPolicy(max_records=64, window_ms=1.0, max_in_flight=1)
    names = names_of(settings)
    holder: list[HeldBroker] = []
    publishers: list[GroupPublisher] = []

    def group(broker: RabbitBroker) -> GroupPublisher:
        holder.append(HeldBroker(broker))
        publishers.append(GroupPublisher(holder[0], names.queue_index, policy, metrics))
        return publishers[0]

    async with isolated(settings, db, cache, group) as harness:
        held = holder[0]
        keys_ = same_queue_keys(names, 6, area=520107)
        first = asyncio.create_task(_save(harness, keys_[0], 0))
        await asyncio.wait_for(held.reached.wait(), 10)
        rest = [asyncio.create_task(_save(harness, k, i)) for i, k in enumerate(keys_[1:])]
        await until(lambda: publishers[0].waiting() == 5)
        await asyncio.sleep(0.05)  # fifty windows pass: nothing may be sent meanwhile
        assert flushes(metrics, WINDOW) == 0 and records_histogram(metrics) == (1, 1)
        held.gate.set()
        async with asyncio.timeout(10):
            await asyncio.gather(first, *rest)
        assert flushes(metrics, DRAINED) == 1
        assert records_histogram(metrics) == (2, 6)
        await harness.writer.apply(await harness.take(2))
        for key in keys_:
            assert await db.get_form(key) == await cache.read(key)
