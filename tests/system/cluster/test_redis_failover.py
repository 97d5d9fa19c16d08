"""A Redis Cluster master dies (SIGKILL) while saves run: saves fail with 503 only while the
replica takes over, then resume; every acknowledged save reaches MySQL."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.crc import key_slot

from schemas.http import parse_form
from schemas.records import FormKey
from service.core.errors import Unavailable
from service.core.ids import make_id
from service.core.names import Names, names_of
from service.core.settings import Settings
from service.forms.save import Forms
from service.forms.windows import BatchWindows
from service.storage.mysql_db import MySQLDatabase
from service.storage.rabbit import open_broker
from service.storage.redis_cache import RedisCache, open_cache
from tests.conftest import ClientFactory
from tests.support import OPEN_BATCH, choices, form_url, login, wait_for_mysql
from tests.system.cluster.redis_cluster import RedisCluster

# Saves keep running this long after the replica took over.
_AFTER_FAILOVER_S = 3.0
_WORKERS = 16


def _slot(names: Names, candidate_id: str) -> int:
    return key_slot(names.tag(candidate_id).encode())


@pytest.fixture
async def forms(settings: Settings, db: MySQLDatabase, cache: RedisCache) -> AsyncIterator[Forms]:
    async with open_broker(settings, names_of(settings)) as broker:
        await broker.wait_connected(10)
        yield Forms(cache, broker, db, BatchWindows(db, 60))


async def test_master_killed_during_saves_loses_nothing_acknowledged(
    cluster: RedisCluster,
    settings: Settings,
    forms: Forms,
    db: MySQLDatabase,
    consumer: None,
    make_client: ClientFactory,
) -> None:
    names = names_of(settings)
    # An API started before the crash must serve again after it, without a restart.
    client: TestClient[Any, Any] = await make_client()
    headers = await login(client)
    keys = [FormKey(make_id(370102, "20070909", i), OPEN_BATCH) for i in range(120)]
    victim = cluster.master_of(_slot(names, keys[0].candidate_id))
    on_victim = {k for k in keys if cluster.master_of(_slot(names, k.candidate_id)) == victim}
    assert 0 < len(on_victim) < len(keys), "the keys must span the dying master and others"

    acked: dict[FormKey, tuple[int, list[dict[str, Any]]]] = {}  # newest (version, choices)
    outcomes: list[tuple[float, FormKey, bool]] = []
    failed_over_at: list[float] = []

    async def saver(worker: int) -> None:
        rng = random.Random(worker)
        n = 0
        while not failed_over_at or time.monotonic() < failed_over_at[0] + _AFTER_FAILOVER_S:
            key = rng.choice(keys)
            n += 1
            body = choices(1 + n % 4, worker * 10_000 + n)
            try:
                saved = await forms.save(key, parse_form({"choices": body}), None, datetime.now())
            except Unavailable:  # the 503 a client sees; it retries
                outcomes.append((time.monotonic(), key, False))
                await asyncio.sleep(0.05)
                continue
            outcomes.append((time.monotonic(), key, True))
            if saved.version > acked.get(key, (0, []))[0]:
                acked[key] = (saved.version, body)

    load = asyncio.gather(*(saver(w) for w in range(_WORKERS)))
    try:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(cluster.kill, victim)
        new_master = await asyncio.to_thread(cluster.wait_failover, victim)
    finally:
        failed_over_at.append(time.monotonic())  # the savers stop a while after this
        await load

    assert new_master != victim
    resumed = [k for t, k, ok in outcomes if ok and t > failed_over_at[0] and k in on_victim]
    assert resumed, "no save on the failed-over slots succeeded after the replica took over"
    refused = [t for t, _, ok in outcomes if not ok]
    assert refused, "saves on the dead master's slots must have failed while it was down"
    assert sum(ok for _, _, ok in outcomes) > len(refused)

    # Nothing acknowledged is lost: MySQL holds every acknowledged version (or a newer one,
    # from a save whose broker confirm came before its Redis commit failed).
    for key, (version, body) in acked.items():
        await wait_for_mysql(db, key, version, timeout=60, choices=body)

    deadline = time.monotonic() + 20
    while (await client.get("/health/deps")).status != 200:
        assert time.monotonic() < deadline, "the API did not become ready after the failover"
        await asyncio.sleep(0.2)
    resp = await client.put(form_url(), json={"choices": choices(2, 5)}, headers=headers)
    assert resp.status == 200, await resp.text()


async def test_more_concurrent_commands_than_connections_wait_instead_of_failing(
    settings: Settings,
) -> None:
    """The cluster client refuses a command when a node's pool is full; the cache makes
    commands wait for a connection like the blocking pool of a single Redis does."""
    small = dataclasses.replace(settings, redis_pool_size=4)
    async with open_cache(small, names_of(small)) as cache:
        keys = [FormKey(make_id(370102, "20070910", i), OPEN_BATCH) for i in range(200)]
        results = await asyncio.gather(*(cache.read(k) for k in keys))
    assert results == [None] * len(keys)
