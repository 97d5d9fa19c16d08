"""What the chaos harness asks its private RocketMQ (``--broker rocketmq``), over the broker's
remoting protocol: messages not yet received per form topic (its retry topic included), the
consumer processes whose clients the broker lists for the group, the dead letters and their
reasons.

Unlike RabbitMQ, a message a consumer received and never acked is neither waiting nor
counted anywhere the broker shows: it comes back (through the retry topic) once its invisible
duration has passed, which is why the drain waits longer than that before it calls quiet.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from service.core.errors import BrokerUnavailable
from service.core.names import Names, names_of
from service.core.settings import Settings
from service.storage import rocket, rocket_admin

# org.apache.rocketmq.remoting.protocol.RequestCode
_GET_MAX_OFFSET = 30
_UPDATE_CONSUMER_OFFSET = 15
_GET_CONSUMER_CONNECTION_LIST = 203
_GET_CONSUME_STATS = 208
_TIMEOUT_S = 3.0
_READ_DEAD_S = 10.0
_MAX_REASONS = 20
# ConsumeStats is fastjson with objects as map keys (not JSON): read the numbers only.
_OFFSETS = re.compile(rb'"brokerOffset":(\d+),"consumerOffset":(\d+)')
_CLIENT_PID = re.compile(rb'"clientId":"[^"@]*@(\d+)@')

# Dead letters counted so far, per broker and topic (the harness reads each only once).
_dead_counted: dict[tuple[str, str], int] = {}


def retry_topic(names: Names, topic: str) -> str:
    """Where the broker puts a received message back once its invisible duration expired."""
    return f"%RETRY%{rocket.consumer_group(names)}_{topic}"


async def _exchange(
    settings: Settings, code: int, fields: dict[str, str]
) -> tuple[dict[str, Any], bytes]:
    try:
        return await rocket_admin.exchange(settings.rocketmq_broker_addr, code, fields, _TIMEOUT_S)
    except rocket_admin.AdminError as exc:
        raise BrokerUnavailable from exc


async def _waiting(settings: Settings, names: Names, topic: str) -> int:
    """Messages of ``topic`` the group has not received yet (a topic the group never read,
    such as a retry topic nothing was put back into, counts as empty)."""
    _, body = await _exchange(
        settings,
        _GET_CONSUME_STATS,
        {"consumerGroup": rocket.consumer_group(names), "topic": topic},
    )
    return sum(int(b) - int(c) for b, c in _OFFSETS.findall(body))


async def waiting_and_consumers(
    settings: Settings, consumer_pids: Collection[int]
) -> dict[str, tuple[int, int]]:
    """Per form topic: messages waiting (its retry topic's included), and how many of
    ``consumer_pids`` have a client the broker lists in the group subscribed to it (the
    client id carries the process id)."""
    names = names_of(settings)
    try:
        _, body = await _exchange(
            settings,
            _GET_CONSUMER_CONNECTION_LIST,
            {"consumerGroup": rocket.consumer_group(names)},
        )
    except BrokerUnavailable as exc:
        if "not online" not in str(exc.__cause__):
            raise
        body = b""
    listed = {int(pid) for pid in _CLIENT_PID.findall(body)}
    states = {}
    for topic in rocket.all_topics(names):
        subscribed = f'"{topic}":{{'.encode() in body
        waiting = await _waiting(settings, names, topic)
        waiting += await _waiting(settings, names, retry_topic(names, topic))
        states[topic] = (waiting, len(listed & set(consumer_pids)) if subscribed else 0)
    return states


async def _max_offset(settings: Settings, topic: str) -> int:
    header, _ = await _exchange(settings, _GET_MAX_OFFSET, {"topic": topic, "queueId": "0"})
    return int(header.get("extFields", {}).get("offset", 0))


async def take_dead_letters(settings: Settings) -> tuple[int, list[str]]:
    """Dead letters parked since the last call (the dead topic's end offset moved; every
    message there is one), and (up to a limit) their reasons, read and acked."""
    names = names_of(settings)
    topic = rocket.dead_topic(names)
    end = await _max_offset(settings, topic)
    key = (settings.rocketmq_broker_addr, topic)
    count = end - _dead_counted.get(key, 0)
    reasons: list[str] = []
    if count > 0:
        try:
            async with rocket.open_broker(settings, names) as broker:
                await broker.wait_connected(_READ_DEAD_S)
                parked = await broker.dead_letters(min(count, _MAX_REASONS), _READ_DEAD_S)
        except TimeoutError as exc:
            raise BrokerUnavailable from exc
        reasons = [str(p.get(rocket.REASON_PROPERTY, "?")) for p in parked]
    _dead_counted[key] = end  # counted once read (a failed read is counted next time)
    return count, reasons


async def purge_form_queues(settings: Settings) -> int:
    """Drop every waiting form message: the group's offset set to each topic's end (the
    harness's self-test: confirmed saves vanish)."""
    names = names_of(settings)
    dropped = 0
    for topic in rocket.all_topics(names):
        dropped += await _waiting(settings, names, topic)
        await _exchange(
            settings,
            _UPDATE_CONSUMER_OFFSET,
            {
                "consumerGroup": rocket.consumer_group(names),
                "topic": topic,
                "queueId": "0",
                "commitOffset": str(await _max_offset(settings, topic)),
            },
        )
    return dropped
