"""RabbitMQ adapter (aio-pika): quorum queues per shard group, publisher confirms, dead letters.

A confirm from a quorum queue means a majority of its replicas fsynced the message, the same
guarantee as RocketMQ's SYNC_FLUSH.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from schemas import messages
from schemas.records import FormRecord
from service.core import logs
from service.core.errors import BrokerUnavailable, PublishUncertain
from service.core.names import HEADER_REQUEST_ID, Names
from service.core.ports import Inbound
from service.core.settings import Settings

log = logging.getLogger(__name__)

REASON_HEADER = "x-volreg-reason"
_DEAD_ROUTING_KEY = "dead"
_RECONNECT_S = 1.0


@dataclass(slots=True)
class _Link:
    connection: AbstractRobustConnection
    channel: AbstractChannel
    exchange: AbstractExchange
    dead_letters: AbstractExchange


def node_urls(amqp_url: str) -> list[str]:
    """``VOLREG_AMQP_URL`` is one URL or a comma-separated list of a cluster's nodes."""
    urls = [u.strip() for u in amqp_url.split(",") if u.strip()]
    if not urls:
        raise ValueError("VOLREG_AMQP_URL: no broker URL given")
    return urls


class RabbitBroker:
    """One robust connection with a confirming channel. Connecting is retried in the
    background, so a process starts while the broker is down and publishes fail fast.

    With several nodes it connects to the first that answers; when that node stays
    unreachable longer than the broker timeout it moves on to the next one (the robust
    connection alone would retry its own node for ever) and re-subscribes the consumer."""

    def __init__(self, settings: Settings, names: Names) -> None:
        self._settings = settings
        self._names = names
        self._urls = node_urls(settings.amqp_url)
        self._node = 0
        self._link: _Link | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._handler: Callable[[Inbound], Awaitable[None]] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect_forever(), name="broker-connect")

    async def wait_connected(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            await self._connected.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        if self._link is not None:
            with suppress(*CONNECTION_EXCEPTIONS, TimeoutError):
                async with asyncio.timeout(self._settings.broker_timeout_s):
                    await self._link.connection.close()

    async def _connect_forever(self) -> None:
        while True:
            await self._attach()
            if len(self._urls) == 1:
                return  # the robust connection reconnects to its only node by itself
            await self._wait_lost()
            log.warning("broker node %d unreachable, moving to the next node", self._node)
            await self._detach()
            self._node = (self._node + 1) % len(self._urls)

    async def _attach(self) -> None:
        """Connect to the current node or, failing that, each next one in turn."""
        while True:
            try:
                self._link = await self._connect(self._urls[self._node])
                if self._handler is not None:
                    await self._subscribe(self._link, self._handler)
                self._connected.set()
                return
            except (*CONNECTION_EXCEPTIONS, TimeoutError, BrokerUnavailable) as exc:
                log.warning("broker node %d not reachable: %s", self._node, exc)
                await self._detach()  # a link that connected but could not subscribe
                self._node = (self._node + 1) % len(self._urls)
                if self._node == 0:  # every node tried once
                    await asyncio.sleep(_RECONNECT_S)

    async def _wait_lost(self) -> None:
        """Return once the current node has been unreachable for a whole broker timeout."""
        loop = asyncio.get_running_loop()
        down_since: float | None = None
        while True:
            await asyncio.sleep(_RECONNECT_S / 4)
            if _is_up(self._link):
                down_since = None
                continue
            down_since = loop.time() if down_since is None else down_since
            if loop.time() - down_since >= self._settings.broker_timeout_s:
                return

    async def _detach(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            with suppress(*CONNECTION_EXCEPTIONS, TimeoutError):
                async with asyncio.timeout(self._settings.broker_timeout_s):
                    await link.connection.close()

    async def _connect(self, url: str) -> _Link:
        timeout = self._settings.broker_timeout_s
        connection = await aio_pika.connect_robust(
            url, timeout=timeout, reconnect_interval=_RECONNECT_S
        )
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            exchange, dead = await declare_topology(channel, self._names, self._settings)
        except BaseException:
            await connection.close()
            raise
        return _Link(connection, channel, exchange, dead)

    def _ready_link(self) -> _Link:
        link = self._link
        if link is None or not _is_up(link):
            raise BrokerUnavailable
        return link

    async def publish(self, record: FormRecord) -> None:
        """Returns once the broker confirmed; raises BrokerUnavailable when nothing was sent and
        PublishUncertain when it was sent without a confirm."""
        index = self._names.queue_index(record.candidate_id)
        headers, body = messages.encode(record, index)
        rid = logs.request_id.get()
        if rid != "-":  # the API request being served: the consumer's logs name it too
            headers[HEADER_REQUEST_ID] = rid
        await self._send_form(
            index,
            headers,
            body,
            messages.message_id(record),
            messages.CONTENT_TYPE,
            messages.CONTENT_ENCODING,
        )

    async def publish_batch(self, records: Sequence[FormRecord]) -> None:
        """One message (batch format) for ``records``, all of one queue; returns and raises
        as ``publish``."""
        headers, body = messages.encode_batch(records)
        index = self._names.queue_index(records[0].candidate_id)
        message_id = messages.batch_message_id(records)
        await self._send_form(index, headers, body, message_id, messages.BATCH_CONTENT_TYPE)

    async def _send_form(
        self,
        index: int,
        headers: dict[str, Any],
        body: bytes,
        message_id: str,
        content_type: str,
        content_encoding: str | None = None,
    ) -> None:
        """Send one encoded form message to queue ``index`` and await its confirm."""
        link = self._ready_link()
        message = aio_pika.Message(
            body,
            headers=headers,
            content_type=content_type,
            content_encoding=content_encoding,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
        )
        try:
            await self._confirmed(link.exchange.publish(message, routing_key=str(index)))
        except BrokerUnavailable as exc:
            # Sent, or perhaps sent: without the confirm nobody knows whether a majority
            # persisted it (a consumer may still apply it, every save of a batch included).
            raise PublishUncertain from exc.__cause__

    async def dead_letter(self, incoming: AbstractIncomingMessage, reason: str) -> None:
        """Park a message that can never be applied, with the reason, then ack the original."""
        await self._park(
            incoming,
            incoming.headers or {},
            incoming.body,
            reason,
            content_type=incoming.content_type,
            content_encoding=incoming.content_encoding,
            message_id=incoming.message_id,
        )
        await _Delivery(self, incoming).ack()

    async def dead_letter_part(
        self,
        incoming: AbstractIncomingMessage,
        headers: Mapping[str, Any],
        body: bytes,
        reason: str,
    ) -> None:
        """Park one record of a batch message, as a message of its own, with the reason."""
        await self._park(incoming, headers, body, reason, content_type=messages.BATCH_CONTENT_TYPE)

    async def _park(
        self,
        incoming: AbstractIncomingMessage,
        headers: Mapping[str, Any],
        body: bytes,
        reason: str,
        *,
        content_type: str | None,
        content_encoding: str | None = None,
        message_id: str | None = None,
    ) -> None:
        link = self._ready_link()
        parked = dict(headers)
        parked[REASON_HEADER] = reason[:1000]
        parked["x-volreg-queue"] = incoming.routing_key or ""
        message = aio_pika.Message(
            body,
            headers=parked,
            content_type=content_type,
            content_encoding=content_encoding,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
        )
        await self._confirmed(link.dead_letters.publish(message, routing_key=_DEAD_ROUTING_KEY))

    async def _confirmed(self, publish: Awaitable[Any]) -> None:
        try:
            async with asyncio.timeout(self._settings.broker_timeout_s):
                await publish
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
            raise BrokerUnavailable from exc

    async def ping(self) -> None:
        self._ready_link()

    def connector_problem(self) -> str | None:
        """None while the link is up or being (re)established; what broke it otherwise."""
        task = self._task
        if task is None:
            return "not started"
        if task.done() and not task.cancelled() and task.exception() is not None:
            return f"connect loop ended: {task.exception()!r}"[:200]
        return None

    async def queue_depths(self, queues: list[str] | None = None) -> dict[str, int]:
        """Ready messages per form queue, or per queue of ``queues`` (a passive declare, no
        management plugin needed). Deliveries a consumer holds unacked are not counted."""
        link = self._ready_link()
        try:
            async with asyncio.timeout(self._settings.broker_timeout_s):
                # A plain channel, not one of the robust connection's: those reopen by
                # themselves and re-declare what was declared on them, so a declare the
                # broker refused (a queue down) would be retried behind the caller's back,
                # in the middle of the connection's own recovery.
                channel = await aio_pika.Channel(link.connection, publisher_confirms=False)
                try:
                    depths = {}
                    for name in self._names.all_queues if queues is None else queues:
                        queue = await channel.declare_queue(name, passive=True)
                        depths[name] = int(queue.declaration_result.message_count or 0)
                    return depths
                finally:
                    if not channel.is_closed:
                        await channel.close()
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
            raise BrokerUnavailable from exc

    def connection(self) -> AbstractRobustConnection:
        """The live connection, for administrative work (declaring, purging, deleting)."""
        return self._ready_link().connection

    async def consume(self, handler: Callable[[Inbound], Awaitable[None]]) -> None:
        """Subscribe ``handler`` to every form queue (on a channel of its own, with prefetch).
        The robust connection re-subscribes after a reconnect, this broker after it moved to
        another node."""
        link = self._ready_link()
        self._handler = handler
        await self._subscribe(link, handler)

    async def _subscribe(self, link: _Link, handler: Callable[[Inbound], Awaitable[None]]) -> None:
        async def deliver(incoming: AbstractIncomingMessage) -> None:
            await handler(_Delivery(self, incoming))

        try:
            channel = await link.connection.channel(publisher_confirms=False)
            await channel.set_qos(prefetch_count=self._settings.consume_prefetch)
            for name in self._names.all_queues:
                # Declared (passively), not merely looked up: only declared queues are
                # restored with their consumers when the robust connection reconnects.
                queue = await channel.declare_queue(name, passive=True)
                await queue.consume(deliver)
        except CONNECTION_EXCEPTIONS as exc:
            raise BrokerUnavailable from exc


def _is_up(link: _Link | None) -> bool:
    return link is not None and not link.connection.is_closed and not link.channel.is_closed


@dataclass(frozen=True, slots=True)
class _Delivery:
    broker: RabbitBroker
    incoming: AbstractIncomingMessage

    @property
    def headers(self) -> Mapping[str, Any]:
        return self.incoming.headers or {}

    @property
    def body(self) -> bytes:
        return self.incoming.body

    async def ack(self) -> None:
        try:
            await self.incoming.ack()
        except CONNECTION_EXCEPTIONS as exc:
            # The channel died: the broker redelivers the message, which is harmless.
            raise BrokerUnavailable from exc

    async def dead_letter(self, reason: str) -> None:
        await self.broker.dead_letter(self.incoming, reason)

    async def dead_letter_part(self, headers: Mapping[str, Any], body: bytes, reason: str) -> None:
        await self.broker.dead_letter_part(self.incoming, headers, body, reason)

    async def requeue(self) -> None:
        if self.incoming.processed:  # acked or dead-lettered before the batch failed
            return
        try:
            await self.incoming.nack(requeue=True)
        except CONNECTION_EXCEPTIONS as exc:
            raise BrokerUnavailable from exc


async def declare_topology(
    channel: AbstractChannel, names: Names, settings: Settings
) -> tuple[AbstractExchange, AbstractExchange]:
    """Exchanges and quorum queues; idempotent, run by every process on connect."""
    exchange = await channel.declare_exchange(
        names.exchange, aio_pika.ExchangeType.DIRECT, durable=True
    )
    dead = await channel.declare_exchange(
        names.dead_letter_exchange, aio_pika.ExchangeType.DIRECT, durable=True
    )
    quorum: dict[str, Any] = {"x-queue-type": "quorum"}
    if settings.quorum_initial_group_size > 0:
        # How many cluster nodes replicate each new queue; a confirm waits for a majority.
        quorum["x-quorum-initial-group-size"] = settings.quorum_initial_group_size
    dlq = await channel.declare_queue(names.dead_letter_queue, durable=True, arguments=quorum)
    await dlq.bind(dead, routing_key=_DEAD_ROUTING_KEY)
    for index, name in enumerate(names.all_queues):
        queue = await channel.declare_queue(
            name,
            durable=True,
            arguments={
                **quorum,
                # Only a message redelivered this often (consumers crashing on it) gets here;
                # consumers dead-letter bad messages themselves, with the reason.
                "x-delivery-limit": settings.delivery_limit,
                "x-dead-letter-exchange": names.dead_letter_exchange,
                "x-dead-letter-routing-key": _DEAD_ROUTING_KEY,
            },
        )
        await queue.bind(exchange, routing_key=str(index))
    return exchange, dead


@asynccontextmanager
async def open_broker(settings: Settings, names: Names) -> AsyncIterator[RabbitBroker]:
    broker = RabbitBroker(settings, names)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.close()
