"""MQ message formats. Version 1: one record, metadata in AMQP headers, the gzip payload as the
body as-is. Version 2: a batch of records in one message (below). Consumers read both.

Consumers never need to inflate a payload to store it; they only check it is gzip.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from schemas.records import FormRecord, Origin

SCHEMA_VERSION = 1
CONTENT_TYPE = "application/json"
CONTENT_ENCODING = "gzip"
_GZIP_MAGIC = b"\x1f\x8b"
_BATCH_MAX = 32


class MessageFormatError(ValueError):
    """The message does not follow any known format version."""


def encode(record: FormRecord, shard: int) -> tuple[dict[str, Any], bytes]:
    """Headers and body for a record."""
    headers: dict[str, Any] = {
        "x-schema": SCHEMA_VERSION,
        "candidate_id": record.candidate_id,
        "batch": record.batch,
        "version": record.version,
        "updated_us": record.updated_us,
        "status": record.status,
        "shard": shard,
    }
    if record.origin is not None:
        # Optional (a message without them is valid): who saved, for the save history.
        headers.update(
            {
                "origin_client": record.origin.client,
                "origin_request": record.origin.request_id,
                "origin_subject": record.origin.subject,
                "origin_role": record.origin.role,
            }
        )
    return headers, record.payload


def message_id(record: FormRecord) -> str:
    return f"{record.candidate_id}:{record.batch}:{record.version}"


def decode(headers: Mapping[str, Any], body: bytes) -> FormRecord:
    """Parse a message; raises :class:`MessageFormatError` saying what is wrong."""
    schema = headers.get("x-schema")
    if schema != SCHEMA_VERSION:
        raise MessageFormatError(f"unknown schema version {schema!r}")
    try:
        record = FormRecord(
            candidate_id=_text(headers, "candidate_id", 18),
            batch=_text(headers, "batch", _BATCH_MAX),
            version=_positive(headers, "version"),
            updated_us=_positive(headers, "updated_us"),
            status=_text(headers, "status", 16),
            payload=bytes(body),
            origin=_origin(headers),
        )
    except (KeyError, TypeError) as exc:
        raise MessageFormatError(f"bad or missing header: {exc}") from exc
    if not record.payload.startswith(_GZIP_MAGIC):
        raise MessageFormatError("body is not gzip")
    return record


def _origin(headers: Mapping[str, Any]) -> Origin | None:
    if "origin_subject" not in headers:
        return None
    return Origin(
        client=_text(headers, "origin_client", 64, empty=True),
        request_id=_text(headers, "origin_request", 64, empty=True),
        subject=_text(headers, "origin_subject", 64),
        role=_text(headers, "origin_role", 16),
    )


def _text(headers: Mapping[str, Any], name: str, max_len: int, empty: bool = False) -> str:
    value = headers[name]
    if isinstance(value, bytes):
        value = value.decode()
    if not isinstance(value, str) or not (0 if empty else 1) <= len(value) <= max_len:
        raise TypeError(f"{name} must be a string of 1..{max_len} characters")
    return value


def _positive(headers: Mapping[str, Any], name: str) -> int:
    value = headers[name]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise TypeError(f"{name} must be a positive integer")
    return value


# --- Version 2: a batch of records in one message (group commit at the publisher) ----------
#
# Headers: ``x-schema`` = 2 and ``x-records`` = the number of frames. The body is the frames
# back to back; each frame stands alone, so one bad record can be dead-lettered by itself as a
# batch of one, its bytes untouched:
#
#   frame = u16 meta length | meta | u32 payload length | payload
#   meta  = JSON array [candidate_id, batch, version, updated_us, status]
#   payload = the record's gzip bytes, as in version 1
BATCH_SCHEMA_VERSION = 2
BATCH_CONTENT_TYPE = "application/x-volreg-batch"
_META = struct.Struct(">H")
_PAYLOAD = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Part:
    """One record of a delivered message: decoded, or the reason it cannot be.

    ``alone`` (batch messages only) is the headers and body of a message holding just this
    record, for dead-lettering it without its neighbours."""

    record: FormRecord | None
    problem: str | None = None
    alone: tuple[dict[str, Any], bytes] | None = None


def encode_batch(records: Sequence[FormRecord]) -> tuple[dict[str, Any], bytes]:
    """Headers and body of one message carrying ``records`` (all for the same queue)."""
    frames = [_frame(r) for r in records]
    return batch_headers(len(frames)), b"".join(frames)


def batch_headers(count: int) -> dict[str, Any]:
    return {"x-schema": BATCH_SCHEMA_VERSION, "x-records": count}


_FIELDS = ("candidate_id", "batch", "version", "updated_us", "status")
# Optional (a frame without them is valid): who saved, for the save history.
_ORIGIN_FIELDS = ("origin_client", "origin_request", "origin_subject", "origin_role")


def _frame(record: FormRecord) -> bytes:
    fields: list[object] = [
        record.candidate_id,
        record.batch,
        record.version,
        record.updated_us,
        record.status,
    ]
    if record.origin is not None:
        o = record.origin
        fields += [o.client, o.request_id, o.subject, o.role]
    meta = json.dumps(fields, separators=(",", ":")).encode()
    return b"".join(
        (_META.pack(len(meta)), meta, _PAYLOAD.pack(len(record.payload)), record.payload)
    )


def batch_message_id(records: Sequence[FormRecord]) -> str:
    return f"batch:{message_id(records[0])}+{len(records) - 1}"


def is_batch(headers: Mapping[str, Any]) -> bool:
    return headers.get("x-schema") == BATCH_SCHEMA_VERSION


def decode_parts(headers: Mapping[str, Any], body: bytes) -> list[Part]:
    """Every record of a version 1 or version 2 message. A version 1 message is one part
    (a bad one raises, as :func:`decode` does); a batch whose framing is broken raises
    :class:`MessageFormatError` (the whole message is unreadable), while a frame whose
    contents are bad becomes a part with its ``problem``."""
    if not is_batch(headers):
        return [Part(decode(headers, body))]
    frames = _split(bytes(body))
    count = headers.get("x-records")
    if count != len(frames):
        raise MessageFormatError(f"x-records is {count!r} but the body holds {len(frames)}")
    parts = []
    for frame in frames:
        alone = (batch_headers(1), frame)
        try:
            parts.append(Part(_unframe(frame), alone=alone))
        except MessageFormatError as exc:
            parts.append(Part(None, str(exc), alone))
    return parts


def _split(body: bytes) -> list[bytes]:
    frames: list[bytes] = []
    at = 0
    while at < len(body):
        start = at
        try:
            (meta_len,) = _META.unpack_from(body, at)
            at += _META.size + meta_len
            (payload_len,) = _PAYLOAD.unpack_from(body, at)
        except struct.error as exc:
            raise MessageFormatError(f"batch frame {len(frames)} is truncated") from exc
        at += _PAYLOAD.size + payload_len
        if at > len(body):
            raise MessageFormatError(f"batch frame {len(frames)} is truncated")
        frames.append(body[start:at])
    if not frames:
        raise MessageFormatError("batch message holds no records")
    return frames


def _unframe(frame: bytes) -> FormRecord:
    (meta_len,) = _META.unpack_from(frame, 0)
    meta_end = _META.size + meta_len
    try:
        meta = json.loads(frame[_META.size : meta_end])
    except ValueError as exc:
        raise MessageFormatError(f"batch record metadata is not JSON: {exc}") from exc
    names = {len(_FIELDS): _FIELDS, len(_FIELDS) + len(_ORIGIN_FIELDS): _FIELDS + _ORIGIN_FIELDS}
    if not isinstance(meta, list) or len(meta) not in names:
        raise MessageFormatError("batch record metadata must be a list of 5 or 9 fields")
    fields = dict(zip(names[len(meta)], meta, strict=True))
    try:
        record = FormRecord(
            candidate_id=_text(fields, "candidate_id", 18),
            batch=_text(fields, "batch", _BATCH_MAX),
            version=_positive(fields, "version"),
            updated_us=_positive(fields, "updated_us"),
            status=_text(fields, "status", 16),
            payload=frame[meta_end + _PAYLOAD.size :],
            origin=_origin(fields),
        )
    except TypeError as exc:
        raise MessageFormatError(f"bad batch record field: {exc}") from exc
    if not record.payload.startswith(_GZIP_MAGIC):
        raise MessageFormatError("batch record payload is not gzip")
    return record
