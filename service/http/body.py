"""Reading request bodies: size caps on the inflated bytes, a read timeout, JSON parsing with
clear errors. aiohttp's own decompression is off (create_app): it answered codings it has no
decoder for (br, zstd) with a plain-text 400 before the application ran."""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

import orjson
from aiohttp import web

from service.core.errors import BadRequest, PayloadTooLarge, RequestTimeout, UnsupportedEncoding
from service.http import keys

# zlib window bits per Content-Encoding: gzip, and deflate as RFC 9110 means it (zlib).
_WBITS = {"gzip": 31, "x-gzip": 31, "deflate": 15}
_IDENTITY = {"", "identity"}


def body_limits(request: web.Request) -> tuple[int, float]:
    """The body cap and read timeout of the app's settings."""
    settings = request.app[keys.SETTINGS]
    return settings.max_body_bytes, settings.http_body_timeout_s


async def read_json(request: web.Request, limit: int, timeout_s: float) -> Any:
    """The parsed JSON body. The cap counts the bytes after inflating a gzip/deflate body, so
    a small compressed bomb is refused too; the whole body must arrive within ``timeout_s``."""
    return decode_json(await read_body(request, limit, timeout_s))


async def read_body(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """The raw (inflated) body under the same caps as :func:`read_json` (400 when empty)."""
    coding = request.headers.get("Content-Encoding", "").strip().lower()
    if coding not in _IDENTITY and coding not in _WBITS:
        raise UnsupportedEncoding
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body larger than {limit} bytes")
    try:
        async with asyncio.timeout(timeout_s):
            raw = await _read(request, limit, _WBITS.get(coding))
    except TimeoutError:
        raise RequestTimeout(f"the body did not arrive within {timeout_s:g} s") from None
    if not raw.strip():
        raise BadRequest("request body is empty; expected JSON")
    return raw


def decode_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None


async def _read(request: web.Request, limit: int, wbits: int | None) -> bytes:
    inflater = None if wbits is None else zlib.decompressobj(wbits=wbits)
    chunks: list[bytes] = []
    received = size = 0
    too_large = PayloadTooLarge(f"body larger than {limit} bytes")
    try:
        async for chunk in request.content.iter_chunked(16 * 1024):
            received += len(chunk)
            if received > limit:
                raise too_large
            if inflater is not None:
                # At most what still fits: a bomb never inflates beyond the cap in memory.
                chunk = inflater.decompress(chunk, limit + 1 - size)
                if inflater.unconsumed_tail:
                    raise too_large
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        if inflater is not None:
            chunks.append(inflater.flush())
            if not inflater.eof:
                raise BadRequest("the compressed body is truncated; check Content-Encoding")
    except zlib.error:
        raise BadRequest("the body could not be decoded; check Content-Encoding") from None
    except web.RequestPayloadError:
        raise BadRequest("the body could not be read") from None
    return b"".join(chunks)
