"""The RabbitMQ node leading the form queues dies (SIGKILL) while saves run on a real 3-node
cluster: saves resume once the other two have elected a new leader, every acknowledged save
reaches MySQL, and the killed node, restarted, rejoins and its replicas catch up."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

import pytest

from schemas.http import parse_form
from schemas.records import FormKey
from service.core.errors import Unavailable
from service.core.ids import make_id
from service.core.names import names_of
from service.core.settings import Settings
from service.forms.group_commit import open_save_publisher
from service.forms.save import Forms
from service.forms.windows import BatchWindows
from service.storage.mysql_parts import AnyDatabase
from service.storage.rabbit import open_broker
from service.storage.redis_cache import RedisCache
from tests.harness import consuming
from tests.support import OPEN_BATCH, choices, wait_for_mysql
from tests.system.cluster.rabbit_cluster import RabbitCluster

_WORKERS = 16
_BEFORE_KILL_S = 1.5
# Saves keep running this long after the new leader was elected.
_AFTER_ELECTION_S = 3.0
_LIMIT_S = 60.0  # the load stops by then whatever happens
_ELECTION_TIMEOUT_S = 30.0
_CATCH_UP_TIMEOUT_S = 60.0


@dataclass
class _Load:
    """What the savers saw: every attempt's end time and error code ("" for a 200), the
    newest acknowledged (version, choices) per key."""

    acked: dict[FormKey, tuple[int, list[dict[str, Any]]]] = field(default_factory=dict)
    outcomes: list[tuple[float, str]] = field(default_factory=list)
    stop_at: float = float("inf")


async def _save(forms: Forms, keys: list[FormKey], load: _Load, worker: int) -> None:
    rng = random.Random(worker)
    started, n = time.monotonic(), 0
    while time.monotonic() < min(load.stop_at, started + _LIMIT_S):
        key, n = rng.choice(keys), n + 1
        body = choices(1 + n % 4, worker * 10_000 + n)
        try:
            saved = await forms.save(key, parse_form({"choices": body}), None, datetime.now())
        except Unavailable as exc:  # the 503 a client sees; it retries
            load.outcomes.append((time.monotonic(), exc.code))
            await asyncio.sleep(0.05)
            continue
        load.outcomes.append((time.monotonic(), ""))
        if saved.version > load.acked.get(key, (0, []))[0]:
            load.acked[key] = (saved.version, body)


async def _leaders(rabbit: RabbitCluster, settings: Settings) -> dict[str, object]:
    """Form queue → its leader. A queue whose leader does not answer in time is left out of
    a listing, so this asks again until every queue is there."""
    queues = names_of(settings).all_queues
    deadline = time.monotonic() + _ELECTION_TIMEOUT_S
    while True:
        listing = await rabbit.queues()
        if all(q in listing for q in queues):
            return {q: listing[q]["leader"] for q in queues}
        assert time.monotonic() < deadline, f"form queues missing from {listing}"
        await asyncio.sleep(0.2)


async def _wait_election(rabbit: RabbitCluster, settings: Settings, dead: str) -> float:
    started = time.monotonic()
    while True:
        leaders = await _leaders(rabbit, settings)
        if dead not in leaders.values():
            return time.monotonic() - started
        assert time.monotonic() - started < _ELECTION_TIMEOUT_S, f"no new leader: {leaders}"
        await asyncio.sleep(0.1)


async def _wait_caught_up(rabbit: RabbitCluster, settings: Settings, node: str) -> float:
    """Until ``node``'s replica of every form queue has committed what the leader has."""
    started = time.monotonic()
    for queue in names_of(settings).all_queues:
        while True:
            status = await rabbit.raft_status(queue)
            [leader] = [row for row in status.values() if row["Raft State"] == "leader"]
            replica = status.get(node, {})
            if replica.get("Commit Index") == leader["Commit Index"]:
                break
            assert time.monotonic() - started < _CATCH_UP_TIMEOUT_S, (
                f"{node} did not catch up on {queue}: {json.dumps(status)}"
            )
            await asyncio.sleep(0.2)
    return time.monotonic() - started


@pytest.mark.parametrize("api_on", ["a-follower", "the-leader"])
async def test_leader_killed_during_saves_loses_nothing_acknowledged(
    api_on: str, rabbit: RabbitCluster, settings: Settings, db: AnyDatabase, cache: RedisCache
) -> None:
    """The consumer declares the queues on `first`, so the queues' leaders start there (client-
    local placement), and its own node dies: it must move to the next node. The API publishes
    through another node (what the kill shows is the election) or through the leader too (it
    must also move on, after ``broker_timeout_s``, as a third of a deployment's APIs would)."""
    first, *others = rabbit.nodes
    consumer_settings = rabbit.settings_for(settings, first)
    api_nodes = others if api_on == "a-follower" else [first]
    api_settings = dataclasses.replace(consumer_settings, amqp_url=rabbit.urls(*api_nodes))
    keys = [FormKey(make_id(370103, "20071212", i), OPEN_BATCH) for i in range(120)]
    load = _Load()
    async with (
        consuming(consumer_settings, db),
        open_broker(api_settings, names_of(api_settings)) as broker,
        open_save_publisher(api_settings, broker, names_of(api_settings)) as publisher,
    ):
        await broker.wait_connected(30)
        leaders = await _leaders(rabbit, api_settings)
        assert set(leaders.values()) == {first.node}, leaders
        forms = Forms(cache, publisher, db, BatchWindows(db, 60))

        savers = asyncio.gather(*(_save(forms, keys, load, w) for w in range(_WORKERS)))
        try:
            await asyncio.sleep(_BEFORE_KILL_S)
            killed_at = time.monotonic()
            await first.kill()
            election_s = await _wait_election(rabbit, api_settings, first.node)
        finally:
            load.stop_at = time.monotonic() + _AFTER_ELECTION_S
            await savers

        after = [not code for t, code in load.outcomes if t > killed_at + election_s]
        assert any(after), "no save succeeded after the new leader was elected"
        refused = [t - killed_at for t, code in load.outcomes if code]
        refused_by = Counter(code for _, code in load.outcomes if code)
        accepted = [t for t, code in load.outcomes if not code]
        # The longest stretch without an acknowledged save around the kill.
        ends = sorted(t for t in accepted if t > killed_at - 1)
        pause = max((b - a for a, b in pairwise(ends)), default=0.0)

        # Nothing acknowledged is lost: MySQL holds every acknowledged version (or newer).
        lost = 0
        for key, (version, body) in load.acked.items():
            try:
                await wait_for_mysql(db, key, version, timeout=60, choices=body)
            except AssertionError:
                lost += 1

    restarted_at = time.monotonic()
    await first.start()
    await rabbit.wait_running([n.node for n in rabbit.nodes])
    rejoin_s = time.monotonic() - restarted_at
    catch_up_s = await _wait_caught_up(rabbit, api_settings, first.node)
    print(
        f"rabbit-cluster leader kill, API on {api_on}:",
        json.dumps(
            {
                "cluster_start_s": round(rabbit.started_in_s, 1),
                "election_s": round(election_s, 2),
                "longest_pause_s": round(pause, 2),
                "refused_503": len(refused),
                "refused_from_s": round(min(refused), 2) if refused else None,
                "refused_until_s": round(max(refused), 2) if refused else None,
                "refused_by": dict(refused_by),
                "saves_acknowledged": len(accepted),
                "keys_checked": len(load.acked),
                "lost": lost,
                "rejoin_s": round(rejoin_s, 1),
                "catch_up_s": round(catch_up_s, 1),
            }
        ),
    )
    assert lost == 0
