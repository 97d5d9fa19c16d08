"""Reading request bodies: size caps on the inflated bytes, JSON parsing with clear errors."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from service.core.errors import BadRequest, PayloadTooLarge, UnsupportedEncoding

# What aiohttp inflates itself; anything else would reach us still encoded.
_ENCODINGS = {"", "identity", "gzip", "x-gzip", "deflate"}


async def read_json(request: web.Request, limit: int) -> Any:
    """The parsed JSON body. The cap counts the bytes after aiohttp inflated a
    ``Content-Encoding: gzip`` body, so a small compressed bomb is refused too."""
    if request.headers.get("Content-Encoding", "").strip().lower() not in _ENCODINGS:
        raise UnsupportedEncoding
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.content.iter_chunked(16 * 1024):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"body larger than {limit} bytes")
            chunks.append(chunk)
    except web.RequestPayloadError:
        raise BadRequest("the body could not be decoded; check Content-Encoding") from None
    raw = b"".join(chunks)
    if not raw.strip():
        raise BadRequest("request body is empty; expected JSON")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
