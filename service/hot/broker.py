"""Hot-item events on RabbitMQ: a durable direct exchange and a bounded quorum queue of their
own (the form queues never see them), on the broker's connection.

The queue holds at most ``hot_queue_max`` messages and then refuses new ones: the publisher
hears a nack and counts the events as dropped instead of the broker growing without bound."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, DeliveryError

from service.core.errors import BrokerUnavailable
from service.core.names import Names
from service.core.settings import Settings
from service.storage.rabbit import RabbitBroker

log = logging.getLogger(__name__)
_ROUTING_KEY = "events"


async def _declare(
    channel: AbstractChannel, names: Names, settings: Settings
) -> tuple[AbstractExchange, AbstractQueue]:
    exchange = await channel.declare_exchange(
        names.hot_exchange, aio_pika.ExchangeType.DIRECT, durable=True
    )
    # A quorum queue like the form queues: a classic queue's message store may not come back
    # after the broker's disk ran full, and would keep the whole broker from starting.
    arguments: dict[str, Any] = {
        "x-queue-type": "quorum",
        "x-max-length": settings.hot_queue_max,
        "x-overflow": "reject-publish",
    }
    if settings.quorum_initial_group_size > 0:
        arguments["x-quorum-initial-group-size"] = settings.quorum_initial_group_size
    queue = await channel.declare_queue(names.hot_queue, durable=True, arguments=arguments)
    await queue.bind(exchange, routing_key=_ROUTING_KEY)
    return exchange, queue


@dataclass(frozen=True, slots=True)
class HotDelivery:
    incoming: AbstractIncomingMessage

    @property
    def body(self) -> bytes:
        return self.incoming.body

    async def ack(self) -> None:
        try:
            await self.incoming.ack()
        except CONNECTION_EXCEPTIONS as exc:
            raise BrokerUnavailable from exc

    async def reject(self) -> None:
        try:
            await self.incoming.reject(requeue=False)
        except CONNECTION_EXCEPTIONS as exc:
            raise BrokerUnavailable from exc


class HotBroker:
    """``publish_hot`` for API processes, ``consume_hot`` for the aggregator."""

    def __init__(self, broker: RabbitBroker, names: Names, settings: Settings) -> None:
        self._broker = broker
        self._names = names
        self._settings = settings
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    async def _ready(self) -> AbstractExchange:
        channel, exchange = self._channel, self._exchange
        if exchange is not None and channel is not None and not channel.is_closed:
            return exchange
        connection = self._broker.connection()  # BrokerUnavailable while not connected
        channel = await connection.channel(publisher_confirms=True)
        self._exchange, _ = await _declare(channel, self._names, self._settings)
        self._channel = channel
        return self._exchange

    async def publish_hot(self, body: bytes) -> None:
        message = aio_pika.Message(
            body, content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        try:
            async with asyncio.timeout(self._settings.broker_timeout_s):
                exchange = await self._ready()
                await exchange.publish(message, routing_key=_ROUTING_KEY)
        except (*CONNECTION_EXCEPTIONS, DeliveryError, TimeoutError) as exc:
            raise BrokerUnavailable(f"hot events not taken: {exc!r}") from exc

    async def consume_hot(
        self, handler: Callable[[HotDelivery], Awaitable[None]], prefetch: int
    ) -> None:
        """Subscribe ``handler`` (the aggregator acks) on a channel of its own; the robust
        connection re-subscribes after a reconnect."""

        async def deliver(incoming: AbstractIncomingMessage) -> None:
            await handler(HotDelivery(incoming))

        try:
            async with asyncio.timeout(self._settings.broker_timeout_s):
                channel = await self._broker.connection().channel(publisher_confirms=False)
                await channel.set_qos(prefetch_count=prefetch)
                _, queue = await _declare(channel, self._names, self._settings)
                await queue.consume(deliver)
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
            raise BrokerUnavailable from exc

    async def close(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            try:
                async with asyncio.timeout(self._settings.broker_timeout_s):
                    await self._channel.close()
            except (*CONNECTION_EXCEPTIONS, TimeoutError):
                log.debug("hot events: channel close failed", exc_info=True)
