"""Who saved travels inside each frame of a batch message (the save history needs it)."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import logging
from collections.abc import Mapping
from typing import Any

from schemas import messages
from schemas.records import STATUS_SAVED, FormRecord, Origin
from service.core import codec
from service.core.ids import make_id
from service.core.metrics import ConsumerMetrics
from service.core.ports import Inbound
from service.core.settings import Settings
from service.forms.consumer import FormWriter, Unacked
from service.forms.fakes import InMemoryDatabase
from tests.support import captured

_RECORD = FormRecord(
    candidate_id="11010519491231002X",
    batch="undergrad-1",
    version=1_700_000_000_000_001,
    updated_us=1_700_000_000_000_001,
    status=STATUS_SAVED,
    payload=gzip.compress(b"[]"),
)


def test_each_frame_keeps_its_origin_and_a_frame_without_one_stays_valid() -> None:
    who = Origin(client="203.0.113.7", request_id="r-1", subject=_RECORD.candidate_id, role="c")
    other = dataclasses.replace(_RECORD, batch="undergrad-2", origin=who)
    headers, body = messages.encode_batch([_RECORD, other])
    parts = messages.decode_parts(headers, body)
    assert [p.problem for p in parts] == [None, None]
    assert [p.record for p in parts] == [_RECORD, other]
    assert parts[0].record is not None and parts[0].record.origin is None
    assert parts[1].record is not None and parts[1].record.origin == who
    # A frame parked alone decodes to the same record, origin included.
    alone_headers, alone_body = parts[1].alone or ({}, b"")
    [again] = messages.decode_parts(alone_headers, alone_body)
    assert again.record == other


class _Delivery:
    """A delivered message, settled in memory."""

    def __init__(self, headers: dict[str, Any], body: bytes) -> None:
        self.headers, self.body = headers, body
        self.acked = False

    async def ack(self) -> None:
        self.acked = True

    async def dead_letter(self, reason: str) -> None:
        raise AssertionError(reason)

    async def dead_letter_part(self, headers: Mapping[str, Any], body: bytes, reason: str) -> None:
        raise AssertionError(reason)

    async def requeue(self) -> None:
        raise AssertionError("requeued")


async def test_the_consumer_logs_each_record_with_its_own_request_id() -> None:
    """A batch message's headers name no request; each applied record's log line names the
    request that saved it, and a record without an origin (an older frame) names none."""
    records = [
        dataclasses.replace(
            _RECORD,
            candidate_id=make_id(110105, "20070101", n),
            payload=codec.pack([]),
            origin=None if n == 2 else Origin("10.0.0.1", f"req-{n}", "s", "candidate"),
        )
        for n in range(3)
    ]
    writer = FormWriter(InMemoryDatabase(), Settings(), ConsumerMetrics())
    delivery = _Delivery(*messages.encode_batch(records))
    inbox: asyncio.Queue[Inbound] = asyncio.Queue()
    await writer.receive(inbox, delivery)
    assert len(writer.unacked) == 1
    with captured("service.forms.consumer", logging.DEBUG) as lines:
        await writer.apply([delivery])
    assert delivery.acked and len(writer.unacked) == 0
    assert [x["request_id"] for x in lines.lines if x["msg"] == "applied"] == [
        "req-0",
        "req-1",
        "-",
    ]


def test_the_oldest_unacked_delivery_is_timed_from_its_arrival() -> None:
    now = [100.0]
    unacked = Unacked(clock=lambda: now[0])
    first, second = _Delivery({}, b""), _Delivery({}, b"")
    assert unacked.oldest_age_s() == 0.0
    unacked.hold(first)
    now[0] = 103.0
    unacked.hold(second)
    now[0] = 110.0
    assert unacked.oldest_age_s() == 10.0
    unacked.settle(first)
    assert unacked.oldest_age_s() == 7.0
    unacked.settle(second)
    assert unacked.oldest_age_s() == 0.0
