"""One multiplexed Redis connection for the save path's scripts: many commands in flight.

redis-py's asyncio pool spends more CPU per command than Redis itself (a lock, a condition
and a socket poll per checkout). Redis answers one connection's commands in order, so a
single connection can carry every concurrent request: commands written in the same loop
iteration go out in one write, replies are parsed by hiredis and handed back in order.
Standalone Redis only; a cluster keeps redis-py's cluster client.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

Arg = str | bytes | int | float


class _Protocol(asyncio.Protocol):
    def __init__(self, on_lost: Any) -> None:
        self.transport: asyncio.Transport | None = None
        self.pending: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._reader = hiredis.Reader()
        self._on_lost = on_lost
        self._out: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self, packed: bytes, future: asyncio.Future[Any]) -> None:
        if not self._out:  # the first command of this loop iteration schedules the write
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(packed)
        self.pending.append(future)

    def _flush(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(self._out))
        self._out.clear()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            future = self.pending.popleft()
            if future.done():  # its caller gave up (cancelled); the reply is dropped
                continue
            if isinstance(reply, hiredis.ReplyError):
                text = str(reply)
                error = NoScriptError if text.startswith("NOSCRIPT") else ResponseError
                future.set_exception(error(text))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        while self.pending:
            future = self.pending.popleft()
            if not future.done():
                future.set_exception(RedisConnectionError(f"Redis connection lost: {exc}"))
        self._on_lost(self)


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():  # its reply, when it comes, is dropped (the future is done)
        future.set_exception(TimeoutError("Redis did not answer in time"))


class RedisPipe:
    """Connects lazily, reconnects after a loss; a command that times out closes the
    connection (every reply behind it would be late too) so the next one starts afresh."""

    @staticmethod
    def supports(url: str) -> bool:
        """Plain TCP only: TLS (rediss://) and unix sockets stay on redis-py's pool."""
        return urlsplit(url).scheme == "redis"

    def __init__(self, url: str, timeout_s: float) -> None:
        if not self.supports(url):
            raise ValueError(f"redis_pipe supports redis:// URLs only, got {url!r}")
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 6379
        self._password = unquote(parts.password) if parts.password else None
        self._username = unquote(parts.username) if parts.username else None
        self._db = int(parts.path.strip("/") or 0)
        self._timeout_s = timeout_s
        self._conn: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    async def _connection(self) -> _Protocol:
        conn = self._conn
        if conn is not None and conn.transport is not None:
            return conn
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._conn is not None and self._conn.transport is not None:
                return self._conn
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self._timeout_s):
                    _, conn = await loop.create_connection(
                        lambda: _Protocol(self._forget), self._host, self._port
                    )
                    await self._handshake(conn)
            except OSError as exc:
                raise RedisConnectionError(f"cannot connect to Redis: {exc}") from exc
            self._conn = conn
            return conn

    async def _handshake(self, conn: _Protocol) -> None:
        commands: list[tuple[Arg, ...]] = []
        if self._password is not None:
            user = (self._username,) if self._username else ()
            commands.append(("AUTH", *user, self._password))
        if self._db:
            commands.append(("SELECT", self._db))
        for command in commands:
            await self._send(conn, command)

    def _forget(self, conn: _Protocol) -> None:
        if self._conn is conn:
            self._conn = None

    async def _send(self, conn: _Protocol, args: Sequence[Arg]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        packed = hiredis.pack_command(tuple(args))  # type: ignore[arg-type]  # stub too narrow
        conn.send(packed, future)
        # A timer on the reply itself: a fraction of the cost of a timeout scope per command.
        timer = loop.call_later(self._timeout_s, _expire, future)
        try:
            return await future
        except TimeoutError:
            if conn.transport is not None:
                conn.transport.abort()
            raise
        finally:
            timer.cancel()

    async def execute(self, *args: Arg) -> Any:
        return await self._send(await self._connection(), args)

    def register_script(self, text: str, fallback: Any = None) -> PipeScript:
        return PipeScript(self, text, fallback)

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and conn.transport is not None:
            conn.transport.close()


class PipeScript:
    """A Lua script called by its SHA1, loaded on first use and again after Redis lost it.
    Called like redis-py's scripts: ``script(keys=[...], args=[...])``; with ``client=`` (a
    redis-py pipeline) the call goes to ``fallback``, the same script registered there."""

    def __init__(self, pipe: RedisPipe, text: str, fallback: Any) -> None:
        self._pipe = pipe
        self._text = text
        self._sha = hashlib.sha1(text.encode()).hexdigest()
        self._fallback = fallback

    async def __call__(
        self, keys: Sequence[Arg] = (), args: Sequence[Arg] = (), client: Any = None
    ) -> Any:
        if client is not None:
            if self._fallback is None:
                raise TypeError("this script has no redis-py twin to queue in a pipeline")
            return await self._fallback(keys=keys, args=args, client=client)
        try:
            return await self._pipe.execute("EVALSHA", self._sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self._pipe.execute("EVAL", self._text, len(keys), *keys, *args)
