"""Catalogue invalidations over a RabbitMQ fanout exchange: every API process binds an
exclusive, auto-delete queue and drops its local copies of the keys it hears about."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage, AbstractRobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from service.errors import BrokerUnavailable
from service.names import Names
from service.settings import Settings

log = logging.getLogger(__name__)
_RECONNECT_S = 1.0


class Broadcast:
    """``publish(keys)`` reaches every listening process (this one too). A process that lost
    its connection may have missed messages: ``on_reset`` is called after each reconnect."""

    def __init__(
        self,
        settings: Settings,
        names: Names,
        on_keys: Callable[[list[str]], None] | None = None,
        on_reset: Callable[[], None] | None = None,
    ) -> None:
        self._settings = settings
        self._names = names
        self._on_keys = on_keys
        self._on_reset = on_reset
        self._connection: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect_forever(), name="catalogue-broadcast")

    async def wait_connected(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            await self._connected.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        if self._connection is not None:
            with suppress(*CONNECTION_EXCEPTIONS, TimeoutError):
                async with asyncio.timeout(self._settings.broker_timeout_s):
                    await self._connection.close()

    async def _connect_forever(self) -> None:
        while True:
            try:
                await self._connect()
                self._connected.set()
                return
            except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
                log.warning("broadcast: broker not reachable, retrying: %s", exc)
                await asyncio.sleep(_RECONNECT_S)

    async def _connect(self) -> None:
        timeout = self._settings.broker_timeout_s
        connection = await aio_pika.connect_robust(
            self._settings.amqp_url, timeout=timeout, reconnect_interval=_RECONNECT_S
        )
        try:
            async with asyncio.timeout(timeout):
                channel = await connection.channel(publisher_confirms=True)
                exchange = await channel.declare_exchange(
                    self._names.catalogue_exchange, aio_pika.ExchangeType.FANOUT, auto_delete=True
                )
                if self._on_keys is not None:
                    name = f"{self._names.catalogue_exchange}.{uuid.uuid4().hex[:12]}"
                    queue = await channel.declare_queue(name, exclusive=True, auto_delete=True)
                    await queue.bind(exchange)
                    await queue.consume(self._deliver, no_ack=True)
        except BaseException:
            await connection.close()
            raise
        connection.reconnect_callbacks.add(self._reconnected)
        self._connection, self._exchange = connection, exchange

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
        exchange, connection = self._exchange, self._connection
        if exchange is None or connection is None or connection.is_closed:
            raise BrokerUnavailable("the invalidation broadcast is not connected")
        message = aio_pika.Message(orjson.dumps({"keys": keys}), content_type="application/json")
        try:
            async with asyncio.timeout(self._settings.broker_timeout_s):
                await exchange.publish(message, routing_key="")
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
            raise BrokerUnavailable from exc


@asynccontextmanager
async def open_broadcast(
    settings: Settings,
    names: Names,
    on_keys: Callable[[list[str]], None] | None = None,
    on_reset: Callable[[], None] | None = None,
) -> AsyncIterator[Broadcast]:
    broadcast = Broadcast(settings, names, on_keys, on_reset)
    await broadcast.start()
    try:
        yield broadcast
    finally:
        await broadcast.close()
