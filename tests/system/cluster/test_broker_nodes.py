"""RabbitMQ given as a list of nodes: the first node that answers is used, a node that stays
down is left for the next one (publishing and consuming resume there), and quorum queues get
the configured initial group size."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

from schemas import messages
from schemas.records import STATUS_SAVED, FormRecord
from service.core import codec
from service.core.errors import BrokerUnavailable
from service.core.ids import make_id
from service.core.names import names_of
from service.core.settings import Settings
from service.storage.mysql_db import MySQLDatabase
from service.storage.redis_cache import RedisCache
from tests.harness import Harness, isolated
from tests.proxy import Proxy
from tests.support import OPEN_BATCH, RABBIT_VHOST, rabbitmqctl


def _record(version: int) -> FormRecord:
    cid = make_id(440106, "20071111", version % 1000)
    return FormRecord(cid, OPEN_BATCH, version, version, STATUS_SAVED, codec.pack([version]))


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


@asynccontextmanager
async def _node(settings: Settings) -> AsyncIterator[Proxy]:
    """A cuttable path to the broker, standing in for one node of a cluster."""
    host, _, port = settings.amqp_url.split("@", 1)[1].split("/", 1)[0].partition(":")
    proxy = Proxy(host, int(port or 5672))
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.cut()


async def test_connects_to_the_first_node_that_answers(
    settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    alive = urlsplit(settings.amqp_url)
    dead = urlunsplit(
        alive._replace(netloc=f"{alive.netloc.rpartition('@')[0]}@127.0.0.1:{_dead_port()}")
    )
    nodes = dataclasses.replace(settings, amqp_url=f"{dead}, {settings.amqp_url}")
    async with isolated(nodes, db, cache) as harness:
        await harness.broker.publish(_record(101))
        [delivery] = await harness.take(1)
        assert messages.decode(delivery.headers, delivery.body) == _record(101)
        await delivery.ack()


async def _publish_until_accepted(harness: Harness, record: FormRecord, limit_s: float) -> float:
    started = time.monotonic()
    while True:
        try:
            await harness.broker.publish(record)
            return time.monotonic() - started
        except BrokerUnavailable:
            assert time.monotonic() - started < limit_s, "publishing did not resume"
            await asyncio.sleep(0.2)


async def test_moves_to_the_next_node_when_one_stays_down(
    settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    async with _node(settings) as first, _node(settings) as second:
        urls = ",".join(p.url(settings.amqp_url) for p in (first, second))
        nodes = dataclasses.replace(settings, amqp_url=urls)
        async with isolated(nodes, db, cache) as harness:
            await harness.broker.publish(_record(201))
            [before] = await harness.take(1)
            await before.ack()

            await first.cut()  # the node dies and stays dead
            with pytest.raises(BrokerUnavailable):
                await harness.broker.publish(_record(202))
            await _publish_until_accepted(harness, _record(203), limit_s=30)
            # The consumer followed. 201 may come again: its ack can die with the node
            # (redelivery is harmless); 202 was refused, so it must never arrive.
            seen = []
            while _record(203) not in seen:
                [after] = await harness.take(1, timeout=20)
                seen.append(messages.decode(after.headers, after.body))
                await after.ack()
            assert set(seen) <= {_record(201), _record(203)}, seen
            await harness.assert_no_more()


async def test_quorum_queues_get_the_configured_initial_group_size(
    settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    sized = dataclasses.replace(settings, quorum_initial_group_size=1)
    async with isolated(sized, db, cache) as harness:
        listing = await asyncio.to_thread(
            rabbitmqctl, "list_queues", "-p", RABBIT_VHOST, "name", "arguments"
        )
        names = names_of(harness.settings)
        for queue in [*names.all_queues, names.dead_letter_queue]:
            [line] = [ln for ln in listing.splitlines() if ln.split("\t")[0] == queue]
            assert "x-quorum-initial-group-size" in line, line
