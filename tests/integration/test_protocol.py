"""Ordering, idempotency and the abort case, with a consumer the test drives."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import pytest

from schemas.http import parse_form
from schemas.records import STATUS_SAVED, FormKey, FormRecord
from service.core import codec
from service.core.ids import make_id
from service.core.metrics import ConsumerMetrics
from service.core.names import names_of
from service.core.ports import Publisher
from service.core.settings import Settings
from service.forms.consumer import FormWriter
from service.forms.group_commit import GroupPolicy, GroupPublisher
from service.forms.save import Saved
from service.storage.mysql_db import MySQLDatabase
from service.storage.rabbit import RabbitBroker
from service.storage.redis_cache import RedisCache
from tests.brokers import dead_letters, publish_raw
from tests.harness import Harness, isolated
from tests.support import OPEN_BATCH, choices, wait_for_mysql

# Drawn without replacement: two tests of one run on the same candidate would see each
# other's rows (a repeated draw of randrange(1000) made them flaky).
_SEQUENCES = random.sample(range(1000), 1000)


def fresh_key() -> FormKey:
    return FormKey(make_id(330106, "20070315", _SEQUENCES.pop()), OPEN_BATCH)


class GatedPublisher:
    """Holds back the publish of one chosen save until the test opens the gate."""

    def __init__(self, inner: Publisher) -> None:
        self.inner = inner
        self.hold_payload: bytes | None = None
        self.reached = asyncio.Event()
        self.gate = asyncio.Event()

    async def publish(self, record: FormRecord) -> None:
        if record.payload == self.hold_payload:
            self.reached.set()
            await self.gate.wait()
        await self.inner.publish(record)

    async def ping(self) -> None:
        await self.inner.ping()


@pytest.fixture(params=[False, True], ids=["one-per-message", "group-commit"])
async def gated(
    request: pytest.FixtureRequest, settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> AsyncIterator[tuple[Harness, GatedPublisher]]:
    """The gate in front of the real publisher, or of group commit on top of it (the saves
    then travel in batch messages)."""
    holder: list[GatedPublisher] = []
    names = names_of(settings)

    def wrap(inner: RabbitBroker) -> Publisher:
        publisher: Publisher = inner
        if request.param:
            publisher = GroupPublisher(inner, names.queue_index, GroupPolicy())
        holder.append(GatedPublisher(publisher))
        return holder[0]

    async with isolated(settings, db, cache, wrap) as harness:
        yield harness, holder[0]


async def _save(harness: Harness, key: FormKey, salt: int) -> Saved:
    form = parse_form({"choices": choices(2, salt)})
    return await harness.forms.save(key, form, None, datetime.now())


@pytest.mark.parametrize("reverse", [False, True], ids=["publish-order", "reversed"])
async def test_aborted_transaction_does_not_win(
    gated: tuple[Harness, GatedPublisher], db: MySQLDatabase, cache: RedisCache, reverse: bool
) -> None:
    """Save H stages first (lower version) and is held before its broker confirm while save F
    stages, publishes and commits. H's message is then published and its Redis commit aborts
    (a newer version is committed). Neither Redis nor MySQL may end up with H, whatever order
    the consumer sees the two messages in."""
    harness, gate = gated
    key = fresh_key()
    gate.hold_payload = codec.pack(choices(2, 1))
    held = asyncio.create_task(_save(harness, key, 1))
    await gate.reached.wait()
    free = await _save(harness, key, 2)
    gate.gate.set()
    aborted = await held
    assert aborted.version < free.version

    in_redis = await cache.read(key)
    assert in_redis is not None and in_redis.version == free.version
    assert codec.unpack(in_redis.payload) == choices(2, 2)

    deliveries = await harness.take(2)
    for delivery in reversed(deliveries) if reverse else deliveries:
        await harness.writer.apply([delivery])
    await harness.assert_no_more()
    in_mysql = await db.get_form(key)
    assert in_mysql is not None and in_mysql.version == free.version
    assert in_mysql.payload == in_redis.payload


async def test_redelivered_and_reordered_messages_change_nothing(
    settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    async with isolated(settings, db, cache) as harness:
        key = fresh_key()
        records = [
            FormRecord(key.candidate_id, key.batch, v, v, STATUS_SAVED, codec.pack(choices(1, v)))
            for v in range(1_000, 1_010)
        ]
        shuffled = records * 2
        random.Random(5).shuffle(shuffled)
        for record in shuffled:
            await harness.broker.publish(record)
        deliveries = await harness.take(len(shuffled))
        for i in range(0, len(deliveries), 3):  # several batches, in shuffled order
            await harness.writer.apply(deliveries[i : i + 3])
        newest = await db.get_form(key)
        assert newest is not None and newest == records[-1]
        synced_before = await _synced_at(db, key)

        for record in records[:-1]:  # late redeliveries of older versions
            await harness.broker.publish(record)
        await harness.writer.apply(await harness.take(len(records) - 1))
        assert await db.get_form(key) == records[-1]
        assert await _synced_at(db, key) == synced_before, "an older version touched the row"


async def _synced_at(db: MySQLDatabase, key: FormKey) -> object:
    async with db._cursor() as cur:
        await cur.execute(
            "SELECT synced_at FROM forms WHERE candidate_id=%s AND batch_code=%s",
            (key.candidate_id, key.batch),
        )
        return (await cur.fetchone())[0]


async def test_poison_message_is_dead_lettered_with_reason_and_good_ones_applied(
    settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    async with isolated(settings, db, cache) as harness:
        key = fresh_key()
        good = FormRecord(key.candidate_id, key.batch, 77, 77, STATUS_SAVED, codec.pack([1]))
        s = harness.settings
        await publish_raw(harness.broker, s, 0, b"not gzip", {"x-schema": 1, "candidate_id": "x"})
        await publish_raw(harness.broker, s, 1, b"{}", {"x-schema": 99})
        await harness.broker.publish(good)
        await harness.writer.apply(await harness.take(3))
        assert await db.get_form(key) == good

        parked = await dead_letters(harness.broker, s, 2, timeout=15)
        reasons = [str(headers["x-volreg-reason"]) for headers in parked]
        assert len(reasons) == 2, reasons
        assert any("version" in r for r in reasons) and any(
            "headers" in r or "header" in r for r in reasons
        ), reasons


class FailingDatabase:
    """Delegates to MySQL but fails the first ``failures`` upserts with an unforeseen error."""

    def __init__(self, inner: MySQLDatabase, failures: int) -> None:
        self._inner = inner
        self.failures = failures

    async def upsert_forms(self, records: Sequence[FormRecord]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("unforeseen failure")
        await self._inner.upsert_forms(records)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.mark.parametrize("failures", [1, 100])
async def test_a_batch_that_crashes_the_writer_goes_back_to_the_broker(
    settings: Settings, db: MySQLDatabase, cache: RedisCache, failures: int
) -> None:
    """Once: redelivered and applied. Always: dead-lettered by the queue's delivery limit,
    and the consumer keeps running either way."""
    limited = dataclasses.replace(settings, delivery_limit=2)
    async with isolated(limited, db, cache) as harness:
        flaky = FailingDatabase(db, failures)
        writer = FormWriter(flaky, harness.settings, ConsumerMetrics())
        key = fresh_key()
        record = FormRecord(key.candidate_id, key.batch, 9, 9, STATUS_SAVED, codec.pack([9]))
        await harness.broker.publish(record)
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(harness.inbox, stop), name="test-flaky-writer")
        try:
            if failures == 1:
                assert await wait_for_mysql(db, key, 9) == record
            else:
                [headers] = await dead_letters(harness.broker, harness.settings, 1, timeout=60)
                assert headers["version"] == 9
                assert await db.get_form(key) is None
            assert not task.done(), "the consumer must survive a failing batch"
        finally:
            stop.set()
            await task
