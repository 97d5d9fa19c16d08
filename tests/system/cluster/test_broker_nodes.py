"""RabbitMQ given as a list of nodes: the first node that answers is used, a node that stays
out of reach is left for the next one (publishing and consuming resume there), and quorum queues
are replicated on as many nodes of a real cluster as configured."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

from loadtest.cluster_local import RabbitServer
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
from tests.support import OPEN_BATCH
from tests.system.cluster.rabbit_cluster import RabbitCluster


def _record(version: int) -> FormRecord:
    cid = make_id(440106, "20071111", version % 1000)
    return FormRecord(cid, OPEN_BATCH, version, version, STATUS_SAVED, codec.pack([version]))


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


@asynccontextmanager
async def _cut_off(node: RabbitServer) -> AsyncIterator[Proxy]:
    """A cuttable path to a cluster node: the node stays alive, the client loses it."""
    proxy = Proxy("127.0.0.1", node.port)
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


async def test_moves_to_the_next_node_when_one_stays_unreachable(
    rabbit: RabbitCluster, settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    """A node that the client cannot reach while the cluster still can (a partition between
    them, which a proxy alone can make): the client moves to the next node and reaches the
    same queue leader through it. test_rabbit_cluster.py kills a node instead."""
    first, second, _ = rabbit.nodes
    async with _cut_off(first) as to_first, _cut_off(second) as to_second:
        on_cluster = rabbit.settings_for(settings)
        urls = ",".join(p.url(n.url) for p, n in ((to_first, first), (to_second, second)))
        nodes = dataclasses.replace(on_cluster, amqp_url=urls)
        async with isolated(nodes, db, cache) as harness:
            queues = names_of(harness.settings).all_queues
            before = await rabbit.queues()
            await harness.broker.publish(_record(201))
            [delivered] = await harness.take(1)
            await delivered.ack()

            await to_first.cut()  # the client's node is alive but out of its reach for good
            with pytest.raises(BrokerUnavailable):
                await harness.broker.publish(_record(202))
            await _publish_until_accepted(harness, _record(203), limit_s=30)
            # The consumer followed. 201 may come again: its ack can die with the link
            # (redelivery is harmless); 202 was refused, so it must never arrive.
            seen = []
            while _record(203) not in seen:
                [after] = await harness.take(1, timeout=20)
                seen.append(messages.decode(after.headers, after.body))
                await after.ack()
            assert set(seen) <= {_record(201), _record(203)}, seen
            await harness.assert_no_more()
            # Nobody died, so no election: the same leaders, now reached through `second`.
            now = await rabbit.queues()
            assert {q: now[q]["leader"] for q in queues} == {q: before[q]["leader"] for q in queues}
            assert {now[q]["leader"] for q in queues} == {first.node}


async def test_quorum_queues_get_the_configured_initial_group_size(
    rabbit: RabbitCluster, settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    everywhere = rabbit.settings_for(settings)
    on_two = dataclasses.replace(rabbit.settings_for(settings), quorum_initial_group_size=2)
    for sized in (everywhere, on_two):
        async with isolated(sized, db, cache) as harness:
            listing = await rabbit.queues()
            names = names_of(harness.settings)
            for queue in [*names.all_queues, names.dead_letter_queue]:
                members, online = listing[queue]["members"], listing[queue]["online"]
                assert listing[queue]["type"] == "quorum", listing[queue]
                assert isinstance(members, list) and isinstance(online, list), listing[queue]
                assert len(members) == sized.quorum_initial_group_size, listing[queue]
                assert sorted(online) == sorted(members), listing[queue]
