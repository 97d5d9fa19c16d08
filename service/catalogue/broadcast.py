"""Catalogue invalidations over a RabbitMQ fanout exchange, on the broker's connection: every
API process binds an exclusive, auto-delete queue and drops its local copies of the keys it
hears about."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from service.core.errors import BrokerUnavailable
from service.core.names import Names
from service.storage.rabbit import RabbitBroker

log = logging.getLogger(__name__)
_RETRY_S = 1.0


class Broadcast:
    """``publish(keys)`` reaches every listening process (this one too). A process that lost
    its connection may have missed messages: ``on_reset`` is called after each reconnect."""

    def __init__(
        self,
        broker: RabbitBroker,
        names: Names,
        timeout_s: float,
        on_keys: Callable[[list[str]], None] | None = None,
        on_reset: Callable[[], None] | None = None,
    ) -> None:
        self._broker = broker
        self._names = names
        self._timeout_s = timeout_s
        self._on_keys = on_keys
        self._on_reset = on_reset
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._task: asyncio.Task[None] | None = None
        self._attached = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._attach_forever(), name="catalogue-broadcast")

    async def wait_attached(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            await self._attached.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        if self._channel is not None:
            with suppress(*CONNECTION_EXCEPTIONS, TimeoutError):
                async with asyncio.timeout(self._timeout_s):
                    await self._channel.close()

    async def _attach_forever(self) -> None:
        """Once the broker is connected: a channel with the exchange (and our queue)."""
        while True:
            try:
                await self._broker.wait_connected(timeout=_RETRY_S)
                async with asyncio.timeout(self._timeout_s):
                    await self._attach()
                self._attached.set()
                return
            except (*CONNECTION_EXCEPTIONS, BrokerUnavailable, TimeoutError) as exc:
                log.debug("broadcast: broker not ready yet: %s", exc)
                await asyncio.sleep(_RETRY_S)

    async def _attach(self) -> None:
        connection = self._broker.connection()
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            self._names.catalogue_exchange, aio_pika.ExchangeType.FANOUT, auto_delete=True
        )
        if self._on_keys is not None:
            name = f"{self._names.catalogue_exchange}.{uuid.uuid4().hex[:12]}"
            queue = await channel.declare_queue(name, exclusive=True, auto_delete=True)
            await queue.bind(exchange)
            await queue.consume(self._deliver, no_ack=True)
        connection.reconnect_callbacks.add(self._reconnected)
        self._channel, self._exchange = channel, exchange

    def _reconnected(self, *_: Any) -> None:
        log.info("broadcast: reconnected; dropping local copies (messages may be missed)")
        if self._on_reset is not None:
            self._on_reset()

    async def _deliver(self, message: AbstractIncomingMessage) -> None:
        try:
            keys = orjson.loads(message.body)["keys"]
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise TypeError("keys must be a list of strings")
        except (ValueError, KeyError, TypeError) as exc:
            log.error("broadcast: ignoring a malformed message: %s", exc)
            return
        if self._on_keys is not None:
            self._on_keys(keys)

    async def publish(self, keys: list[str]) -> None:
        """Returns once the broker confirmed; raises BrokerUnavailable otherwise."""
        exchange, channel = self._exchange, self._channel
        if exchange is None or channel is None or channel.is_closed:
            raise BrokerUnavailable("the invalidation broadcast is not connected")
        message = aio_pika.Message(orjson.dumps({"keys": keys}), content_type="application/json")
        try:
            async with asyncio.timeout(self._timeout_s):
                await exchange.publish(message, routing_key="")
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
            raise BrokerUnavailable from exc


@asynccontextmanager
async def open_broadcast(
    broker: RabbitBroker,
    names: Names,
    timeout_s: float,
    on_keys: Callable[[list[str]], None] | None = None,
    on_reset: Callable[[], None] | None = None,
) -> AsyncIterator[Broadcast]:
    broadcast = Broadcast(broker, names, timeout_s, on_keys, on_reset)
    await broadcast.start()
    try:
        yield broadcast
    finally:
        await broadcast.close()
