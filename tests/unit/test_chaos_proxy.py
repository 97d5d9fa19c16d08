"""The chaos harness's loopback proxy on a local echo server: a partition holds every byte
(nothing refused) until healed, latency delays chunks in order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from loadtest.chaos_proxy import Proxy


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    proxy = Proxy("127.0.0.1", server.sockets[0].getsockname()[1])
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
        server.close()
        await server.wait_closed()


async def _connect(proxy: Proxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def test_a_partition_holds_bytes_until_healed_then_delivers_them(proxy: Proxy) -> None:
    reader, writer = await _connect(proxy)
    writer.write(b"before")
    assert await asyncio.wait_for(reader.readexactly(6), 5) == b"before"
    proxy.partition()
    writer.write(b"during")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(6), 0.3)  # held, the connection still open
    assert proxy.held > 0
    proxy.heal()
    assert await asyncio.wait_for(reader.readexactly(6), 5) == b"during"
    writer.close()


async def test_a_connection_opened_during_a_partition_hangs_until_healed(proxy: Proxy) -> None:
    proxy.partition()
    reader, writer = await _connect(proxy)  # accepted, but nothing reaches the server
    writer.write(b"hello")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(5), 0.3)
    proxy.heal()
    assert await asyncio.wait_for(reader.readexactly(5), 5) == b"hello"
    writer.close()


async def test_latency_delays_every_chunk_and_keeps_their_order(proxy: Proxy) -> None:
    reader, writer = await _connect(proxy)
    proxy.latency_s = 0.2
    started = time.monotonic()
    for part in (b"a", b"b", b"c"):
        writer.write(part)
        await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(3), 5) == b"abc"
    # A lower bound only (one delay out, one back): a busy machine can only add to it.
    assert time.monotonic() - started >= 0.4
    assert proxy.delayed > 0
    writer.close()
