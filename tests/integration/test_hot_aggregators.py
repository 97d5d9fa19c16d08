"""Several `volreg hot` on one event queue, on the real servers: competing aggregators, a
message redelivered after an aggregator died between MySQL and Redis, duplicates, and Redis
losing the buckets while both run. The totals in MySQL and in the Redis top lists are exact."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

import aio_pika

from schemas import hot
from service.core.names import Names, names_of
from service.core.settings import Settings
from service.hot.aggregate import Aggregator, durable_rows
from service.hot.broker import HotBroker
from service.hot.mysql import HotTables
from service.storage.mysql_parts import AnyDatabase, home_of
from service.storage.rabbit import open_broker
from service.storage.redis_cache import open_cache
from tests.conftest import running_aggregator

_INSTITUTIONS = ("10041", "10042", "10043", "10044", "10045")
_WAIT_S = 30.0


def _message(batch: str, minute: int, i: int) -> hot.HotMessage:
    code = _INSTITUTIONS[i % len(_INSTITUTIONS)]
    rows = (
        hot.HotRow(minute, batch, hot.INSTITUTION, code, i % 3 + 1),
        hot.HotRow(minute - i % 2, batch, hot.FIRST_INSTITUTION, code, 1),
    )
    return hot.HotMessage(f"agg-{batch}-{i}", rows)


def _expected(messages: list[hot.HotMessage], kind: str) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for message in messages:
        for row in message.rows:
            if row.kind == kind:
                totals[row.item] += row.count
    return dict(totals)


async def _eventually(check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + _WAIT_S
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


async def _totals_agree(
    aggregator: Aggregator, db: AnyDatabase, batch: str, messages: list[hot.HotMessage]
) -> bool:
    listed = await aggregator.top(batch, "batch", limit=20)
    institutions = listed["institutions"]
    redis_any = {e["item"]: e["count"] for e in institutions["any_position"]}
    redis_first = {e["item"]: e["count"] for e in institutions["first_choice"]}
    rows = await home_of(db).fetch_all("hot_minutes_page", 0, "", "", "", 100_000)
    mysql: Counter[str] = Counter()
    for _minute, batch_code, kind, item, hits in rows:
        if batch_code == batch and kind == hot.INSTITUTION:
            mysql[item] += int(hits)
    want = _expected(messages, hot.INSTITUTION)
    return (
        redis_any == want
        and redis_first == _expected(messages, hot.FIRST_INSTITUTION)
        and dict(mysql) == want
    )


async def _wipe_redis(settings: Settings, names: Names) -> None:
    """Redis loses every hot-item key (buckets, markers) while the aggregators run."""
    async with open_cache(settings, names) as cache:
        found = [key async for key in cache.client.scan_iter(match=names.hot_key("*"), count=1000)]
        for key in found:
            await cache.client.delete(key)


async def test_two_aggregators_and_a_redelivery_count_every_message_once(
    settings: Settings, db: AnyDatabase
) -> None:
    s = dataclasses.replace(settings, queue_prefix=f"{settings.queue_prefix}-hotn")
    names = names_of(s)
    batch = f"hn-{uuid.uuid4().hex[:6]}"
    minute = int(time.time() // 60)
    first = [_message(batch, minute, i) for i in range(30)]
    rest = [_message(batch, minute, i) for i in range(30, 150)]
    async with open_broker(s, names) as broker:
        await broker.wait_connected(10)
        publisher = HotBroker(broker, names, s)
        connection = await aio_pika.connect(s.amqp_url)
        try:
            # An aggregator that dies between MySQL and Redis: it takes the first 30 messages,
            # writes their minute totals to MySQL, and goes away without acking any.
            await publisher.publish_hot(hot.encode(first[0]))
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=len(first))
            queue = await channel.get_queue(names.hot_queue)
            held: list[aio_pika.abc.AbstractIncomingMessage] = []

            async def hold(incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
                held.append(incoming)

            tag = await queue.consume(hold)
            for message in first[1:]:
                await publisher.publish_hot(hot.encode(message))
            deadline = time.monotonic() + _WAIT_S
            while len(held) < len(first):
                assert time.monotonic() < deadline, f"the dying aggregator got {len(held)}"
                await asyncio.sleep(0.05)
            tables = HotTables(db)
            for incoming in held:
                message = hot.decode(incoming.body)
                assert await tables.add(message.message_id, durable_rows(message.rows))
            await queue.cancel(tag)

            async with running_aggregator(s) as one, running_aggregator(s) as two:
                for message in rest:
                    await publisher.publish_hot(hot.encode(message))
                for message in rest[:10]:  # published twice (same message id)
                    await publisher.publish_hot(hot.encode(message))
                await connection.close()  # the 30 unacked messages are redelivered
                everything = first + rest
                handled = len(everything) + 10  # the duplicates too

                async def all_handled() -> bool:
                    return one.applied + two.applied >= handled

                await _eventually(all_handled)
                assert one.applied > 0 and two.applied > 0, (one.applied, two.applied)
                assert await _totals_agree(one, db, batch, everything)

                # Redis loses the buckets while both run and messages keep coming: one of them
                # restores from MySQL (the other's messages wait), nothing counts twice.
                await _wipe_redis(s, names)
                later = [_message(batch, minute, i) for i in range(150, 210)]
                for message in later:
                    await publisher.publish_hot(hot.encode(message))
                everything += later
                await _eventually(lambda: _totals_agree(two, db, batch, everything))
                await asyncio.sleep(1.0)  # nothing late adds to them
                assert await _totals_agree(one, db, batch, everything)
        finally:
            await publisher.close()
            if not connection.is_closed:
                await connection.close()
            channel = await broker.connection().channel()
            await channel.queue_delete(names.hot_queue)
            await channel.exchange_delete(names.hot_exchange)
            await channel.close()
