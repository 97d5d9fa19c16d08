"""Hot-item event format, version 1: counts folded in the emitting process, one JSON body.

``{"v": 1, "id": "<emitter>-<seq>", "rows": [[minute, batch, kind, item, count], ...]}``.
``minute`` is epoch minutes; ``batch`` is ``READS_BATCH`` for read keys. The aggregator
applies a message at most once per ``id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

SCHEMA_VERSION = 1
# Kinds of counted items.
FIRST_INSTITUTION = "first"  # institution of the first choice
INSTITUTION = "inst"  # institution at any position
FIRST_MAJOR = "firstmajor"  # "institution/major" of the first choice
MAJOR = "major"  # "institution/major" at any position
READ = "read"  # a key read (exam:<id>, form:<id>:<batch>, institution:<code>, ...)
KINDS = (FIRST_INSTITUTION, INSTITUTION, FIRST_MAJOR, MAJOR, READ)
READS_BATCH = "_reads"
_ITEM_MAX = 64
_BATCH_MAX = 32


class HotFormatError(ValueError):
    """The body is no hot-item message of a known version."""


@dataclass(frozen=True, slots=True)
class HotRow:
    minute: int
    batch: str
    kind: str
    item: str
    count: int


@dataclass(frozen=True, slots=True)
class HotMessage:
    message_id: str
    rows: tuple[HotRow, ...]


def encode(message: HotMessage) -> bytes:
    rows = [[r.minute, r.batch, r.kind, r.item, r.count] for r in message.rows]
    return orjson.dumps({"v": SCHEMA_VERSION, "id": message.message_id, "rows": rows})


def decode(body: bytes) -> HotMessage:
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HotFormatError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("v") != SCHEMA_VERSION:
        raise HotFormatError("unknown schema version")
    message_id, raw_rows = data.get("id"), data.get("rows")
    if not isinstance(message_id, str) or not 0 < len(message_id) <= 64:
        raise HotFormatError("id must be a string of 1..64 characters")
    if not isinstance(raw_rows, list):
        raise HotFormatError("rows must be a list")
    return HotMessage(message_id, tuple(_row(r) for r in raw_rows))


def _row(raw: Any) -> HotRow:
    if not isinstance(raw, list) or len(raw) != 5:
        raise HotFormatError("a row is [minute, batch, kind, item, count]")
    minute, batch, kind, item, count = raw
    if not _positive(minute) or not _positive(count):
        raise HotFormatError("minute and count must be positive integers")
    if not isinstance(batch, str) or not 0 < len(batch) <= _BATCH_MAX:
        raise HotFormatError("bad batch")
    if kind not in KINDS:
        raise HotFormatError(f"unknown kind {kind!r}")
    if not isinstance(item, str) or not 0 < len(item) <= _ITEM_MAX:
        raise HotFormatError("bad item")
    return HotRow(minute, batch, kind, item, count)


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
