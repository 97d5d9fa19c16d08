"""An isolated save path (own queues) with a consumer the test drives message by message."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest

from service.core.metrics import ConsumerMetrics
from service.core.names import names_of
from service.core.ports import Inbound, Publisher
from service.core.settings import Settings
from service.filing.mysql import FilingTables
from service.forms.consumer import FormWriter
from service.forms.save import Forms
from service.forms.windows import BatchWindows
from service.storage.brokers import open_form_broker
from service.storage.mysql_parts import AnyDatabase
from service.storage.redis_cache import RedisCache
from tests.brokers import delete_topology


@dataclasses.dataclass
class Harness:
    settings: Settings
    broker: Any  # the form broker of the run (tests/brokers.py)
    forms: Forms
    writer: FormWriter
    inbox: asyncio.Queue[Inbound]

    async def take(self, count: int, timeout: float = 10.0) -> list[Inbound]:
        """The next ``count`` deliveries, in broker order."""
        async with asyncio.timeout(timeout):
            return [await self.inbox.get() for _ in range(count)]

    async def assert_no_more(self, wait: float = 0.3) -> None:
        await asyncio.sleep(wait)
        assert self.inbox.empty(), f"{self.inbox.qsize()} unexpected deliveries"


@asynccontextmanager
async def isolated(
    base: Settings,
    db: AnyDatabase,
    cache: RedisCache,
    wrap: Callable[[Any], Publisher] = lambda p: p,
    consume: bool = True,
) -> AsyncIterator[Harness]:
    """Forms on the shared Redis/MySQL but with queues of their own, consumed only by the test
    (unless ``consume`` is false); ``wrap`` may put a gate in front of the real publisher."""
    if base.rocketmq_transactions:
        # Its Forms drive the plain publisher (gates, raw messages): transactional topics take
        # half messages only (tests/integration/test_rocketmq_transactions.py covers them).
        pytest.skip("drives plain sends; transactional saves have their own suite")
    settings = dataclasses.replace(base, queue_prefix=f"{base.queue_prefix}-{uuid.uuid4().hex[:6]}")
    names = names_of(settings)
    async with open_form_broker(settings, names) as broker:
        await broker.wait_connected(10)
        inbox: asyncio.Queue[Inbound] = asyncio.Queue()
        writer = FormWriter(db, settings, ConsumerMetrics())
        if consume:
            await broker.consume(partial(writer.receive, inbox))
        forms = Forms(cache, wrap(broker), db, BatchWindows(db, 60))
        try:
            yield Harness(settings, broker, forms, writer, inbox)
        finally:
            await delete_topology(broker, settings)


@asynccontextmanager
async def consuming(settings: Settings, db: AnyDatabase) -> AsyncIterator[None]:
    """An in-process consumer (``volreg consume``) on the settings' queues while the block runs."""
    async with open_form_broker(settings, names_of(settings)) as broker:
        await broker.wait_connected(30)
        inbox: asyncio.Queue[Inbound] = asyncio.Queue()
        await broker.consume(inbox.put)
        stop = asyncio.Event()
        writer = FormWriter(db, settings, ConsumerMetrics(), journal=FilingTables(db))
        task = asyncio.create_task(writer.run(inbox, stop), name="test-consumer")
        try:
            yield
        finally:
            stop.set()
            await task
