"""What the chaos harness asks its private broker: form queue depths and consumer counts (a
passive declare, no management plugin), and the dead letters with their reasons. On RocketMQ
(``settings.broker``) the same questions go to ``loadtest.chaos_rocket``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aio_pika.abc import AbstractChannel
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, AMQPError

from loadtest import chaos_rocket
from service.core.errors import BrokerUnavailable
from service.core.names import names_of
from service.core.settings import Settings
from service.storage.rabbit import REASON_HEADER, open_broker

_CONNECT_S = 5.0
_MAX_REASONS = 20


@dataclass(frozen=True, slots=True)
class QueueState:
    ready: int  # messages waiting (deliveries a consumer holds unacked are not counted)
    consumers: int


@asynccontextmanager
async def _channel(settings: Settings) -> AsyncIterator[AbstractChannel]:
    """A channel on a connection of its own; any broker failure is BrokerUnavailable."""
    try:
        async with open_broker(settings, names_of(settings)) as broker:
            await broker.wait_connected(_CONNECT_S)
            channel = await broker.connection().channel(publisher_confirms=False)
            try:
                yield channel
            finally:
                if not channel.is_closed:
                    await channel.close()
    except (*CONNECTION_EXCEPTIONS, AMQPError, TimeoutError) as exc:
        raise BrokerUnavailable from exc


async def queue_states(
    settings: Settings, consumer_pids: Collection[int] = ()
) -> dict[str, QueueState]:
    """Per form queue (topic). On RocketMQ ``consumers`` counts those of ``consumer_pids``
    the broker lists a client of (RabbitMQ counts its consumers itself)."""
    if settings.broker == "rocketmq":
        found = await chaos_rocket.waiting_and_consumers(settings, consumer_pids)
        return {name: QueueState(ready, count) for name, (ready, count) in found.items()}
    states = {}
    async with _channel(settings) as channel:
        for name in names_of(settings).all_queues:
            declared = (await channel.declare_queue(name, passive=True)).declaration_result
            states[name] = QueueState(
                int(declared.message_count or 0), int(declared.consumer_count or 0)
            )
    return states


async def take_dead_letters(settings: Settings) -> tuple[int, list[str]]:
    """Empty the dead-letter queue: how many messages it held, and (up to a limit) why each
    got there: the consumer's reason header, else the broker's own (delivery limit)."""
    if settings.broker == "rocketmq":
        return await chaos_rocket.take_dead_letters(settings)
    count, reasons = 0, list[str]()
    async with _channel(settings) as channel:
        queue = await channel.declare_queue(names_of(settings).dead_letter_queue, passive=True)
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            headers = message.headers or {}
            reason = headers.get(REASON_HEADER) or headers.get("x-first-death-reason")
            count += 1
            if len(reasons) < _MAX_REASONS:
                reasons.append(_text(reason))
            await message.ack()
    return count, reasons


async def purge_form_queues(settings: Settings) -> int:
    """Drop every waiting form message (the harness's self-test: confirmed saves vanish)."""
    if settings.broker == "rocketmq":
        return await chaos_rocket.purge_form_queues(settings)
    dropped = 0
    async with _channel(settings) as channel:
        for name in names_of(settings).all_queues:
            queue = await channel.declare_queue(name, passive=True)
            result = await queue.purge()
            dropped += int(getattr(result, "message_count", 0) or 0)
    return dropped


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return "?" if value is None else str(value)
