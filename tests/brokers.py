"""The form broker the suites run on: RabbitMQ, or RocketMQ when ``VOLREG_TEST_BROKER=rocketmq``
(``make test-rocketmq``). What differs between the two for a test lives here."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import aio_pika

from service.core.names import names_of
from service.core.settings import Settings
from service.storage.rabbit import RabbitBroker
from tests.proxy import Proxy
from tests.support import ROOT


def on_rocketmq(settings: Settings) -> bool:
    return settings.broker == "rocketmq"


def through(settings: Settings, proxy: Proxy | FrozenBroker) -> dict[str, Any]:
    """Settings overrides that send the form broker's traffic through ``proxy``."""
    if isinstance(proxy, FrozenBroker):
        return {}
    return {"amqp_url": proxy.url(settings.amqp_url)}


class FrozenBroker:
    """RocketMQ's proxy hands clients its own address in every route (local mode), so a
    loopback proxy in front of it would be bypassed: "cut" stops the broker's JVM (SIGSTOP)
    instead, "restore" lets it go on (SIGCONT). Only our own JVM, by its pid file."""

    def __init__(self) -> None:
        pid_file = ROOT / "var" / "run" / "rocketmq-proxy.pid"
        self._pid = int(pid_file.read_text().strip())
        self._stopped = False

    async def cut(self) -> None:
        os.kill(self._pid, signal.SIGSTOP)
        self._stopped = True

    async def restore(self) -> None:
        if self._stopped:
            os.kill(self._pid, signal.SIGCONT)
            self._stopped = False


async def publish_raw(
    broker: Any, settings: Settings, index: int, body: bytes, headers: dict[str, Any]
) -> None:
    """A message that did not come from our publisher (possibly malformed)."""
    names = names_of(settings)
    if on_rocketmq(settings):
        from rocketmq import Message

        from service.storage import rocket

        message = Message()
        message.topic = rocket.topic(names, index)
        message.body = body
        for name, value in rocket.properties_of(headers).items():
            message.add_property(name, value)
        await asyncio.wrap_future(broker._producer().send_async(message))
        return
    assert isinstance(broker, RabbitBroker)
    channel = await broker.connection().channel()
    exchange = await channel.get_exchange(names.exchange)
    await exchange.publish(aio_pika.Message(body, headers=headers), routing_key=str(index))
    await channel.close()


async def dead_letters(broker: Any, settings: Settings, count: int, timeout: float) -> list[Any]:
    """The headers of up to ``count`` dead-lettered messages (taken off the broker)."""
    if on_rocketmq(settings):
        found: list[Any] = await broker.dead_letters(count, timeout)
        return found
    assert isinstance(broker, RabbitBroker)
    names = names_of(settings)
    channel = await broker.connection().channel()
    dlq = await channel.get_queue(names.dead_letter_queue)
    headers: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout):
            while len(headers) < count:
                message = await dlq.get(fail=False)
                if message is None:
                    await asyncio.sleep(0.2)  # polling a queue, not waiting on an event
                    continue
                headers.append(dict(message.headers))
                await message.ack()
    except TimeoutError:
        pass
    await channel.close()
    return headers


async def delete_topology(broker: Any, settings: Settings) -> None:
    names = names_of(settings)
    if on_rocketmq(settings):
        from service.storage import rocket

        await rocket.delete_topology(settings, names)
        return
    assert isinstance(broker, RabbitBroker)
    channel = await broker.connection().channel()
    for queue in [*names.all_queues, names.dead_letter_queue]:
        await channel.queue_delete(queue)
    for exchange in (names.exchange, names.dead_letter_exchange):
        await channel.exchange_delete(exchange)
    await channel.close()
