"""RocketMQ only (``make test-rocketmq``): the broker killed with SIGKILL and started again.

Saves are refused at once while it is down, and the same publisher and consumer carry on by
themselves once it is back: the consumer through a new client, since the restarted proxy no
longer knows the old one's settings."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import time

import pytest

from schemas.records import FormRecord
from service.core import codec
from service.core.errors import BrokerUnavailable
from service.core.names import names_of
from service.core.ports import Inbound
from service.core.settings import Settings
from service.storage.brokers import open_form_broker
from tests.brokers import delete_topology, on_rocketmq
from tests.support import DEMO_ID, ROOT

pytestmark = pytest.mark.skipif(
    os.environ.get("VOLREG_TEST_BROKER") != "rocketmq", reason="RocketMQ only: make test-rocketmq"
)

_RESTART_S = 180  # a JVM start on a busy 2-core machine


def _record(version: int) -> FormRecord:
    return FormRecord(DEMO_ID, "restart-1", version, version, "saved", codec.pack([version]))


async def _take(inbox: asyncio.Queue[Inbound], wanted: set[int], timeout: float) -> set[int]:
    seen: set[int] = set()
    async with asyncio.timeout(timeout):
        while not wanted <= seen:
            delivery = await inbox.get()
            seen.add(int(delivery.headers["version"]))
            await delivery.ack()
    return seen


async def test_broker_killed_and_restarted_saves_refused_then_both_sides_reconnect(
    settings: Settings,
) -> None:
    """Two prefixes: ``live`` is consumed across the kill (the consumer must reconnect by
    itself), ``stored`` only after the restart (what was stored before must still be there)."""
    assert on_rocketmq(settings)
    live = dataclasses.replace(settings, queue_prefix=f"{settings.queue_prefix}-live")
    stored = dataclasses.replace(settings, queue_prefix=f"{settings.queue_prefix}-stored")
    async with (
        open_form_broker(live, names_of(live)) as consumer,
        open_form_broker(stored, names_of(stored)) as publisher,
    ):
        await consumer.wait_connected(30)
        await publisher.wait_connected(30)
        inbox: asyncio.Queue[Inbound] = asyncio.Queue()
        await consumer.consume(inbox.put)
        try:
            await publisher.publish(_record(1))
            await consumer.publish(_record(1))
            assert await _take(inbox, {1}, 30) == {1}
            pid = int((ROOT / "var" / "run" / "rocketmq-proxy.pid").read_text())
            os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.2)
            started = time.monotonic()
            with pytest.raises(BrokerUnavailable):
                await publisher.publish(_record(2))
            assert time.monotonic() - started < settings.broker_timeout_s

            up = await asyncio.create_subprocess_exec(
                "bash", str(ROOT / "scripts" / "rocketmq.sh"), "up", stdout=subprocess.DEVNULL
            )
            assert await up.wait() == 0
            async with asyncio.timeout(_RESTART_S):
                while True:
                    try:
                        await publisher.publish(_record(3))
                        await consumer.publish(_record(3))
                        break
                    except BrokerUnavailable:
                        await asyncio.sleep(0.5)
            assert 3 in await _take(inbox, {3}, 60)

            later: asyncio.Queue[Inbound] = asyncio.Queue()
            await publisher.consume(later.put)
            assert await _take(later, {1, 3}, 60) == {1, 3}  # and never 2, refused
        finally:
            await delete_topology(consumer, live)
            await delete_topology(publisher, stored)
