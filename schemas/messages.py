"""MQ message format, version 1: metadata in AMQP headers, the gzip payload as the body as-is.

Consumers never need to inflate the payload to store it; they only check it is gzip.
"""

from __future__ import annotations

from collections.abc import Mapping
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
