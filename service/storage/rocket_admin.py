"""RocketMQ topic administration over the broker's remoting protocol (no JVM needed).

gRPC clients never create topics, so the service creates the ones it needs on connect, with
the same request the tools' admin command sends (``updateTopic``). A frame is
``[length][header length][JSON header][body]``; the answer carries code 0 on success.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import struct
from contextlib import suppress
from typing import Any

# org.apache.rocketmq.remoting.protocol.RequestCode / ResponseCode
UPDATE_AND_CREATE_TOPIC = 17
DELETE_SUBSCRIPTIONGROUP = 207
DELETE_TOPIC_IN_BROKER = 215
_SUCCESS = 0
_PERM_READ_WRITE = 6
_opaque = itertools.count(1)


class AdminError(Exception):
    """The broker refused an admin request or could not be reached."""


async def request(
    address: str, code: int, fields: dict[str, str], timeout: float, body: bytes = b""
) -> dict[str, Any]:
    """Send one request to ``host:port`` and return the response header."""
    header, _ = await exchange(address, code, fields, timeout, body)
    return header


async def exchange(
    address: str, code: int, fields: dict[str, str], timeout: float, body: bytes = b""
) -> tuple[dict[str, Any], bytes]:
    """Send one request to ``host:port``; the response header and body (e.g. a broker's
    statistics, JSON in the body)."""
    host, _, port = address.rpartition(":")
    header = json.dumps(
        {
            "code": code,
            "language": "PYTHON",
            "version": 0,
            "opaque": next(_opaque),
            "flag": 0,
            "extFields": fields,
            "serializeTypeCurrentRPC": "JSON",
        }
    ).encode()
    frame = struct.pack(">II", 4 + len(header) + len(body), len(header)) + header + body
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                writer.write(frame)
                await writer.drain()
                (length,) = struct.unpack(">I", await reader.readexactly(4))
                data = await reader.readexactly(length)
            finally:
                writer.close()
                with suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        raise AdminError(f"broker {address} unreachable: {exc!r}") from exc
    (header_len,) = struct.unpack(">I", data[:4])
    end = 4 + (header_len & 0xFFFFFF)
    answer: dict[str, Any] = json.loads(data[4:end])
    if answer.get("code") != _SUCCESS:
        raise AdminError(f"broker {address} refused request {code}: {answer.get('remark')}")
    return answer, data[end:]


async def create_topic(address: str, topic: str, message_type: str, timeout: float) -> None:
    """Create (or update, idempotently) a topic with one queue and an explicit message type."""
    await request(
        address,
        UPDATE_AND_CREATE_TOPIC,
        {
            "topic": topic,
            "defaultTopic": "TBW102",
            "readQueueNums": "1",
            "writeQueueNums": "1",
            "perm": str(_PERM_READ_WRITE),
            "topicFilterType": "SINGLE_TAG",
            "topicSysFlag": "0",
            "order": "false",
            "attributes": f"+message.type={message_type}",
        },
        timeout,
    )


async def delete_topic(address: str, topic: str, timeout: float) -> None:
    await request(address, DELETE_TOPIC_IN_BROKER, {"topic": topic}, timeout)


async def delete_group(address: str, group: str, timeout: float) -> None:
    await request(
        address, DELETE_SUBSCRIPTIONGROUP, {"groupName": group, "cleanOffset": "true"}, timeout
    )
