"""Messages waiting in queues, by a passive declare each (no management plugin needed).
Deliveries a consumer holds unacked are not counted."""

from __future__ import annotations

import asyncio

from aio_pika.exceptions import CONNECTION_EXCEPTIONS, ChannelClosed

from service.core.errors import BrokerUnavailable
from service.storage.rabbit import RabbitBroker


async def message_counts(
    broker: RabbitBroker, queues: list[str], timeout_s: float
) -> dict[str, int]:
    """Ready messages per queue; a queue that does not exist (yet) is left out."""
    counts: dict[str, int] = {}
    try:
        async with asyncio.timeout(timeout_s):
            connection = broker.connection()
            for name in queues:
                # A passive declare of a missing queue closes its channel: one channel each.
                channel = await connection.channel(publisher_confirms=False)
                try:
                    queue = await channel.declare_queue(name, passive=True)
                    counts[name] = int(queue.declaration_result.message_count or 0)
                except ChannelClosed:
                    continue
                finally:
                    if not channel.is_closed:
                        await channel.close()
    except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
        raise BrokerUnavailable from exc
    return counts
