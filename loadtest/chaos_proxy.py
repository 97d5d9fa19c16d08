"""A loopback TCP proxy the chaos harness puts between processes and a server, to partition
them (bytes held, nothing refused: what a dead link looks like, unlike a dead server) or to
make the link slow (latency added to every chunk, order kept)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from typing import Any
from urllib.parse import urlsplit

_CHUNK = 65536


class Proxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._healed = asyncio.Event()
        self._healed.set()
        self.latency_s = 0.0
        self.port = 0
        self.held = 0  # chunks (and connections) that arrived while partitioned
        self.delayed = 0  # chunks forwarded late on purpose

    def url(self, url: str) -> str:
        """``url`` with its host:port replaced by this proxy's."""
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")
        host = f"127.0.0.1:{self.port}"
        return parts._replace(netloc=f"{netloc[0]}@{host}" if netloc[1] else host).geturl()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def partition(self) -> None:
        """From now on nothing passes either way, and new connections hang, until heal()."""
        self._healed.clear()

    def heal(self) -> None:
        self._healed.set()

    async def close(self) -> None:
        self.heal()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._healed.is_set():
            self.held += 1
            await self._healed.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        for src, dst, peer in ((reader, up_writer, writer), (up_reader, writer, up_writer)):
            chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
            self._spawn(self._read(src, chunks), "chaos-proxy-read")
            self._spawn(self._write(chunks, dst, peer), "chaos-proxy-write")

    async def _read(
        self, src: asyncio.StreamReader, out: asyncio.Queue[tuple[float, bytes]]
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await src.read(_CHUNK):
                if not self._healed.is_set():
                    self.held += 1
                out.put_nowait((time.monotonic() + self.latency_s, data))
        out.put_nowait((0.0, b""))  # end of stream

    async def _write(
        self,
        chunks: asyncio.Queue[tuple[float, bytes]],
        dst: asyncio.StreamWriter,
        peer: asyncio.StreamWriter,
    ) -> None:
        try:
            while True:
                due, data = await chunks.get()
                if not data:
                    break
                await self._healed.wait()
                wait = due - time.monotonic()
                if wait > 0:
                    self.delayed += 1
                    await asyncio.sleep(wait)
                dst.write(data)
                await dst.drain()
        except OSError:
            pass
        finally:
            dst.transport.abort()
            peer.transport.abort()
