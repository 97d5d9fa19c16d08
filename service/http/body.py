"""Reading request bodies: size caps on the inflated bytes, JSON parsing with clear errors."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from service.errors import BadRequest, PayloadTooLarge


async def read_json(request: web.Request, limit: int) -> Any:
    """The parsed JSON body. The cap counts the bytes after aiohttp inflated a
    ``Content-Encoding: gzip`` body, so a small compressed bomb is refused too."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(16 * 1024):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body larger than {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise BadRequest("request body is empty; expected JSON")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
