"""The multiplexed Redis connection of the save path, against the real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from service.core.settings import Settings
from service.storage.redis_pipe import RedisPipe
from tests.proxy import Proxy


@pytest.fixture
async def pipe(settings: Settings) -> AsyncIterator[RedisPipe]:
    p = RedisPipe(settings.redis_url, timeout_s=2.0)
    yield p
    await p.aclose()


def _key(settings: Settings, name: str) -> str:
    return f"{{{settings.key_prefix}:pipe}}:{name}:{uuid.uuid4().hex[:8]}"


async def test_concurrent_commands_each_get_their_own_reply(
    pipe: RedisPipe, settings: Settings
) -> None:
    counter = _key(settings, "n")
    echoes = await asyncio.gather(*(pipe.execute("ECHO", f"v{i}") for i in range(500)))
    assert echoes == [f"v{i}".encode() for i in range(500)]
    incremented = await asyncio.gather(*(pipe.execute("INCR", counter) for _ in range(300)))
    assert sorted(incremented) == list(range(1, 301))
    assert await pipe.execute("DEL", counter) == 1


async def test_script_is_loaded_on_first_call_then_called_by_sha(
    pipe: RedisPipe, settings: Settings
) -> None:
    marker = uuid.uuid4().hex  # a script Redis has never seen
    script = pipe.register_script(f"return {{KEYS[1], ARGV[1], '{marker}'}}")
    key = _key(settings, "s")
    assert await script(keys=[key], args=["a"]) == [key.encode(), b"a", marker.encode()]
    sha = script._sha
    assert await pipe.execute("SCRIPT", "EXISTS", sha) == [1]
    assert await script(keys=[key], args=[7]) == [key.encode(), b"7", marker.encode()]


async def test_error_reply_raises_and_the_connection_stays_usable(
    pipe: RedisPipe, settings: Settings
) -> None:
    key = _key(settings, "text")
    await pipe.execute("SET", key, "not a number")
    with pytest.raises(ResponseError):
        await pipe.execute("INCR", key)
    assert await pipe.execute("GET", key) == b"not a number"
    await pipe.execute("DEL", key)


async def test_lost_connection_fails_fast_then_reconnects(
    settings: Settings, redis_proxy: Proxy
) -> None:
    p = RedisPipe(redis_proxy.url(settings.redis_url), timeout_s=2.0)
    try:
        assert await p.execute("PING") == b"PONG"
        await redis_proxy.cut()
        with pytest.raises(RedisConnectionError):
            await p.execute("PING")
        await redis_proxy.restore()
        assert await p.execute("PING") == b"PONG"
    finally:
        await p.aclose()


async def test_a_silent_server_times_out_and_the_connection_is_dropped() -> None:
    closed = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers; returns when the client hangs up
        closed.set()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    p = RedisPipe(f"redis://127.0.0.1:{port}/0", timeout_s=0.3)
    try:
        with pytest.raises(TimeoutError):
            await p.execute("PING")
        async with asyncio.timeout(5):
            await closed.wait()  # a late reply could only be misattributed: hang up instead
    finally:
        await p.aclose()
        server.close()
        await server.wait_closed()


def test_only_plain_tcp_urls_are_multiplexed() -> None:
    assert RedisPipe.supports("redis://127.0.0.1:6379/0")
    assert not RedisPipe.supports("rediss://cache.example:6380/0")  # TLS stays on redis-py
    assert not RedisPipe.supports("unix:///run/redis.sock")


async def test_the_database_number_of_the_url_is_selected(settings: Settings) -> None:
    base = settings.redis_url.rsplit("/", 1)[0]
    key = _key(settings, "db")
    one, zero = RedisPipe(f"{base}/1", timeout_s=2.0), RedisPipe(f"{base}/0", timeout_s=2.0)
    try:
        await one.execute("SET", key, "in-db-1", "EX", 60)
        assert await zero.execute("GET", key) is None
        assert await one.execute("GET", key) == b"in-db-1"
    finally:
        await one.execute("DEL", key)
        await one.aclose()
        await zero.aclose()
