"""Compact JSON + gzip for values in Redis and in messages, and splitting of big values."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import orjson

# Level 5: most of level 9's ratio on short JSON at a fraction of the CPU.
_LEVEL = 5
_MAX_INFLATED = 4 * 1024 * 1024


def pack(value: Any) -> bytes:
    """JSON-encode and gzip a value."""
    return compress(orjson.dumps(value))


def compress(raw_json: bytes) -> bytes:
    """Gzip JSON that is already encoded (the same bytes :func:`pack` makes of its value)."""
    return gzip.compress(raw_json, compresslevel=_LEVEL, mtime=0)


def pack_small(value: Any) -> bytes:
    """For values of a few hundred bytes (exam results): plain JSON. gzip would not make
    them smaller and costs more CPU than the rest of a bulk-imported row; unpack reads both."""
    return orjson.dumps(value)


def inflate_json(blob: bytes) -> bytes:
    """The JSON text a :func:`pack`/:func:`compress` value holds, not parsed (bounded as
    :func:`unpack` is)."""
    if blob.startswith(b"{"):
        return blob
    inflater = zlib.decompressobj(wbits=31)
    try:
        raw = inflater.decompress(blob, _MAX_INFLATED)
    except zlib.error as exc:
        raise ValueError(f"not a valid gzip value: {exc}") from exc
    if inflater.unconsumed_tail:
        raise ValueError("compressed value inflates beyond the limit")
    return raw


def unpack(blob: bytes) -> Any:
    """Inverse of :func:`pack` (and :func:`pack_small`); refuses to inflate beyond a sane
    bound."""
    if blob.startswith(b"{"):  # a plain JSON object from pack_small
        return orjson.loads(blob)
    inflater = zlib.decompressobj(wbits=31)
    try:
        raw = inflater.decompress(blob, _MAX_INFLATED)
    except zlib.error as exc:  # not a ValueError: callers that refuse bad values catch that
        raise ValueError(f"not a valid gzip value: {exc}") from exc
    if inflater.unconsumed_tail:
        raise ValueError("compressed value inflates beyond the limit")
    return orjson.loads(raw)


def split(blob: bytes, chunk: int) -> list[bytes]:
    """Cut a blob into parts of at most ``chunk`` bytes (at least one part)."""
    if chunk <= 0:
        raise ValueError("chunk size must be positive")
    return [blob[i : i + chunk] for i in range(0, len(blob), chunk)] or [b""]


def join(parts: list[bytes]) -> bytes:
    return b"".join(parts)
