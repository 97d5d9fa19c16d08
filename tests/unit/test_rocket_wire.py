"""RocketMQ adapter logic that needs no broker: properties, names, the admin wire format."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from schemas import messages
from schemas.records import FormRecord
from service.core import codec
from service.core.names import Names
from service.storage import rocket, rocket_admin


def test_headers_survive_the_trip_through_string_properties() -> None:
    record = FormRecord("11010519491231002X", "undergrad-1", 17, 23, "saved", codec.pack([1]))
    headers, body = messages.encode(record, 3)
    properties = rocket.properties_of(headers)
    assert all(isinstance(v, str) for v in properties.values())
    assert messages.decode(rocket.headers_of(properties), body) == record


def test_a_non_numeric_version_stays_text_and_is_refused() -> None:
    record = FormRecord("11010519491231002X", "undergrad-1", 17, 23, "saved", codec.pack([1]))
    headers, body = messages.encode(record, 0)
    properties = rocket.properties_of(headers) | {"version": "-5"}
    with pytest.raises(messages.MessageFormatError):
        messages.decode(rocket.headers_of(properties), body)


def test_topic_names_use_only_characters_rocketmq_allows() -> None:
    names = Names("vr", "volreg-test-ab12", 256, 3)
    topics = [*rocket.all_topics(names), rocket.dead_topic(names), rocket.consumer_group(names)]
    assert topics[:3] == [f"volreg-test-ab12_forms_{i}" for i in range(3)]
    assert all(c.isalnum() or c in "_-" for t in topics for c in t)


@asynccontextmanager
async def _broker_answering(
    code: int, remark: str, seen: list[dict[str, object]]
) -> AsyncIterator[str]:
    """A stand-in for the broker's remoting port that answers every request with ``code``."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        (length,) = struct.unpack(">I", await reader.readexactly(4))
        frame = await reader.readexactly(length)
        (header_len,) = struct.unpack(">I", frame[:4])
        seen.append(json.loads(frame[4 : 4 + header_len]))
        header = json.dumps({"code": code, "opaque": seen[-1]["opaque"], "remark": remark})
        out = header.encode()
        writer.write(struct.pack(">II", 4 + len(out), len(out)) + out)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_create_topic_sends_the_update_topic_request() -> None:
    seen: list[dict[str, object]] = []
    async with _broker_answering(0, "", seen) as address:
        await rocket_admin.create_topic(address, "volreg_forms_0", "NORMAL", timeout=2)
    [request] = seen
    assert request["code"] == rocket_admin.UPDATE_AND_CREATE_TOPIC
    fields = request["extFields"]
    assert isinstance(fields, dict)
    assert fields["topic"] == "volreg_forms_0"
    assert fields["attributes"] == "+message.type=NORMAL"
    assert fields["perm"] == "6"


async def test_a_refusal_or_no_broker_is_an_admin_error() -> None:
    async with _broker_answering(1, "topic not allowed", []) as address:
        with pytest.raises(rocket_admin.AdminError, match="topic not allowed"):
            await rocket_admin.create_topic(address, "x", "NORMAL", timeout=2)
    with pytest.raises(rocket_admin.AdminError, match="unreachable"):
        await rocket_admin.create_topic("127.0.0.1:1", "x", "NORMAL", timeout=2)
