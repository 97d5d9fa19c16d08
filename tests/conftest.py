"""Fixtures against the real Redis, RabbitMQ and MariaDB, isolated per test run."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient, TestServer

from service.core.names import names_of
from service.core.passwords import Passwords
from service.core.ports import Batch
from service.core.settings import Settings
from service.hot.aggregate import Aggregator, Delivery
from service.main.wiring import create_app, open_hot_aggregator
from service.storage.mysql_db import MySQLDatabase
from service.storage.mysql_migrate import drop_database, migrate
from service.storage.mysql_parts import AnyDatabase, open_database
from service.storage.redis_cache import RedisCache, open_cache
from tests.brokers import FrozenBroker, on_rocketmq
from tests.harness import consuming
from tests.proxy import Proxy
from tests.staff_support import seed_catalogue, seed_staff
from tests.support import CLOSED_BATCH, DEMO_ID, OPEN_BATCH, OTHER_ID, PASSWORD, make_settings

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
# Fixtures shared by the tiers; each tier resolves them on its own `api`.
pytest_plugins = ["tests.bad_input"]


@pytest.fixture(scope="session")
async def settings() -> AsyncIterator[Settings]:
    s = make_settings()
    await prepare(s)
    yield s
    await cleanup(s)


async def prepare(s: Settings) -> None:
    """Migrate the run's database and load what the suites expect: an open and a closed
    batch, two candidates (one with exam results), the catalogue and the staff accounts."""
    await migrate(s)
    async with open_database(s) as db:
        now = datetime.now()
        await db.upsert_batch(
            Batch(
                OPEN_BATCH,
                "Undergraduate, first",
                now - timedelta(days=1),
                now + timedelta(days=30),
            )
        )
        await db.upsert_batch(
            Batch(CLOSED_BATCH, "Closed", now - timedelta(days=30), now - timedelta(days=1))
        )
        hashed = Passwords(s.argon2_time_cost, s.argon2_memory_kib).hash(PASSWORD)
        await db.upsert_candidates(
            [(DEMO_ID, "Demo", "110105001", hashed), (OTHER_ID, "Other", "110105001", hashed)]
        )
        await db.upsert_exams(
            {
                DEMO_ID: {
                    "total_score": 612.5,
                    "rank": 1024,
                    "subjects": {"chinese": 120, "math": 140, "english": 130, "elective": 222.5},
                }
            }
        )
        await seed_catalogue(db)
        await seed_staff(db, s)


async def cleanup(s: Settings) -> None:
    await drop_database(s)
    client = redis.Redis.from_url(s.redis_url)
    async for key in client.scan_iter(match=f"{{{s.key_prefix}:*", count=1000):
        await client.delete(key)
    await client.aclose()
    connection = await aio_pika.connect(s.amqp_url)
    async with connection:
        channel = await connection.channel()
        for prefix in {s.queue_prefix, f"{s.queue_prefix}-kill", f"{s.queue_prefix}-dlq"}:
            names = names_of(Settings(queue_prefix=prefix, queues=s.queues))
            for queue in [*names.all_queues, names.dead_letter_queue, names.hot_queue]:
                await channel.queue_delete(queue)
            for exchange in (names.exchange, names.dead_letter_exchange, names.hot_exchange):
                await channel.exchange_delete(exchange)
    if on_rocketmq(s):
        from service.storage import rocket

        await rocket.delete_topology(s, names_of(s))


@pytest.fixture(scope="session")
async def db(settings: Settings) -> AsyncIterator[AnyDatabase]:
    async with open_database(settings) as database:
        yield database


@pytest.fixture(scope="session")
async def cache(settings: Settings) -> AsyncIterator[RedisCache]:
    async with open_cache(settings, names_of(settings)) as c:
        yield c


@pytest.fixture(scope="session")
async def consumer(settings: Settings, db: MySQLDatabase) -> AsyncIterator[None]:
    """An in-process consumer on the run's queues for the whole session."""
    async with consuming(settings, db):
        yield


# Hot items that show up within a second (tests that watch them).
FAST_HOT: dict[str, Any] = {"hot_flush_s": 0.1, "hot_key_threshold": 3, "hot_push_interval_s": 0.2}


@pytest.fixture
async def aggregator(settings: Settings) -> AsyncIterator[Aggregator]:
    """``volreg hot`` in this process, on the run's event queue."""
    s = dataclasses.replace(settings, **FAST_HOT)
    async with open_hot_aggregator(s, names_of(s)) as (aggregator, hot_broker, broker):
        await broker.wait_connected(10)
        await aggregator.restore()
        inbox: asyncio.Queue[Delivery] = asyncio.Queue()
        await hot_broker.consume_hot(inbox.put, 50)
        stop = asyncio.Event()
        task = asyncio.create_task(aggregator.run(inbox, stop, 0.2), name="test-hot")
        yield aggregator
        stop.set()
        await task


@pytest.fixture
async def make_client(settings: Settings) -> AsyncIterator[ClientFactory]:
    """Start an API on the run's settings (with overrides); waits until its broker link is up
    unless ``wait_broker=False``."""
    clients: list[TestClient[Any, Any]] = []

    async def make(wait_broker: bool = True, **overrides: Any) -> TestClient[Any, Any]:
        s = make_settings(**overrides) if overrides else settings
        client = TestClient(TestServer(create_app(s)))
        await client.start_server()
        clients.append(client)
        if wait_broker:
            for _ in range(100):
                if (await client.get("/health/ready")).status == 200:
                    break
                await asyncio.sleep(0.1)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def api(make_client: ClientFactory, consumer: None) -> TestClient[Any, Any]:
    return await make_client()


@asynccontextmanager
async def _proxy(url: str) -> AsyncIterator[Proxy]:
    target = urlsplit(url)
    proxy = Proxy(target.hostname or "127.0.0.1", target.port or 0)
    await proxy.start()
    yield proxy
    with contextlib.suppress(OSError):
        await proxy.cut()


@pytest.fixture
async def broker_proxy(settings: Settings) -> AsyncIterator[Proxy]:
    """A cuttable path to the form broker; ``tests.brokers.through(settings, proxy)`` are the
    settings that go through it."""
    if on_rocketmq(settings):
        frozen = FrozenBroker()
        try:
            yield frozen  # type: ignore[misc]
        finally:
            await frozen.restore()
        return
    async with _proxy(settings.amqp_url) as proxy:
        yield proxy


@pytest.fixture
async def redis_proxy(settings: Settings) -> AsyncIterator[Proxy]:
    async with _proxy(settings.redis_url) as proxy:
        yield proxy


@pytest.fixture
async def mysql_proxy(settings: Settings) -> AsyncIterator[Proxy]:
    async with _proxy(settings.mysql_dsn) as proxy:
        yield proxy
