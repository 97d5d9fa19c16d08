"""The form broker chosen by ``VOLREG_BROKER``: RabbitMQ quorum queues (``rabbitmq``, the
default) or RocketMQ 5 with synchronous flush (``rocketmq``). Both implement the publisher and
consumer ports; the RocketMQ client (gRPC, OpenTelemetry) is imported only when chosen.

The catalogue's invalidation broadcast stays on RabbitMQ either way (README: "Brokers")."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from schemas.records import FormRecord
from service.core import settings_rules
from service.core.names import Names
from service.core.ports import Inbound
from service.core.settings import Settings
from service.storage import rabbit

BROKERS = settings_rules.BROKERS


class FormBroker(Protocol):
    async def wait_connected(self, timeout: float) -> None: ...

    async def publish(self, record: FormRecord) -> None: ...

    async def publish_batch(self, records: Sequence[FormRecord]) -> None: ...

    async def ping(self) -> None: ...

    async def consume(self, handler: Callable[[Inbound], Awaitable[None]]) -> None: ...


def check(settings: Settings) -> None:
    if settings.broker not in BROKERS:
        raise ValueError(f"VOLREG_BROKER={settings.broker!r}: expected one of {', '.join(BROKERS)}")


@asynccontextmanager
async def open_form_broker(
    settings: Settings,
    names: Names,
    rabbit_broker: rabbit.RabbitBroker | None = None,
    committed: Callable[[FormRecord], Coroutine[Any, Any, bool | None]] | None = None,
) -> AsyncIterator[FormBroker]:
    """The form broker; on RabbitMQ an already open ``rabbit_broker`` is reused. On RocketMQ
    with transactions, ``committed`` answers the broker's check-backs (the API's broker)."""
    check(settings)
    if settings.broker == "rocketmq":
        from service.storage import rocket

        async with rocket.open_broker(settings, names, committed) as rocket_broker:
            yield rocket_broker
    elif rabbit_broker is not None:
        yield rabbit_broker
    else:
        async with rabbit.open_broker(settings, names) as rabbit_broker:
            yield rabbit_broker
