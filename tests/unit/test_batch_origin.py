"""Who saved travels inside each frame of a batch message (the save history needs it)."""

from __future__ import annotations

import dataclasses
import gzip

from schemas import messages
from schemas.records import STATUS_SAVED, FormRecord, Origin

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
