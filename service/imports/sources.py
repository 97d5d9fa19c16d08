"""Where an import's bytes come from: a file or an HTTP upload, gzip or not (told by its
magic bytes, inflated as a stream), cut into blocks of whole lines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol

from gzip_stream import AsyncGZIPDecompressedStream

from service.core.errors import VolregError

CHUNK = 1 << 20
_MAX_LINE = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"


class ByteSource(Protocol):
    async def read(self, size: int) -> bytes: ...


class ImportRefused(VolregError):
    """The file cannot be imported (unknown header, not CSV, not gzip)."""

    status = 422
    code = "import_refused"


class UploadInterrupted(VolregError):
    """The upload stopped or stalled before its end."""

    status = 400
    code = "upload_interrupted"


class Counting:
    """Counts the raw bytes read (compressed, for an upload or a .gz file): progress and ETA."""

    def __init__(self, inner: ByteSource) -> None:
        self._inner = inner
        self.consumed = 0

    async def read(self, size: int) -> bytes:
        data = await self._inner.read(size)
        self.consumed += len(data)
        return data


class _Prefixed:
    """A source with some bytes already read from it put back in front."""

    def __init__(self, head: bytes, inner: ByteSource) -> None:
        self._head = head
        self._inner = inner

    async def read(self, size: int) -> bytes:
        if self._head:
            data, self._head = self._head[:size], self._head[size:]
            return data
        return await self._inner.read(size)


class FileSource:
    """A local file; reads are short local disk reads, done in place."""

    def __init__(self, fh: Any) -> None:
        self._fh = fh

    async def read(self, size: int) -> bytes:
        data: bytes = self._fh.read(size)
        return data


class StreamSource:
    """An HTTP request body (``request.content``); every read has a timeout."""

    def __init__(self, stream: Any, timeout_s: float) -> None:
        self._stream = stream
        self._timeout_s = timeout_s

    async def read(self, size: int) -> bytes:
        try:
            async with asyncio.timeout(self._timeout_s):
                data: bytes = await self._stream.read(size)
                return data
        except TimeoutError:
            raise UploadInterrupted(f"no data for {self._timeout_s:g}s") from None
        except Exception as exc:  # the client went away: whatever the transport raised
            raise UploadInterrupted(f"{exc.__class__.__name__}: {exc}") from exc


async def read_full(source: ByteSource, size: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < size:
        data = await source.read(size - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


async def plain(source: ByteSource) -> ByteSource:
    """The decompressed stream when the input is gzip (by its magic bytes), else itself."""
    head = await read_full(source, 2)
    prefixed = _Prefixed(head, source)
    if head == _GZIP_MAGIC:
        # Small reads bound how much one compressed chunk can inflate to at once.
        stream: ByteSource = AsyncGZIPDecompressedStream(prefixed)
        return stream
    return prefixed


async def line_blocks(source: ByteSource, head: bytes) -> AsyncIterator[bytes]:
    """Blocks of whole lines (each ends with a newline, except maybe the file's last)."""
    tail = head
    while True:
        data = await source.read(CHUNK)
        if not data:
            break
        data = tail + data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            if len(data) > _MAX_LINE:
                raise ImportRefused(f"a line is longer than {_MAX_LINE} bytes")
            tail = data
            continue
        tail = data[cut:]
        yield data[:cut]
    if tail:
        yield tail
