"""Recovery: SIGTERM drains in-flight saves; saves go on while MySQL is down and the
consumers drain afterwards; a consumer resumes after its broker connection drops; warm-up
reloads a Redis that lost its data without replacing newer saves."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime
from urllib.parse import urlsplit

import aiohttp
import pytest

from loadtest.cluster_local import free_port
from reconciler.mysql_archive import open_archive
from reconciler.redis_index import open_index
from reconciler.warmup import warm_up
from schemas.http import parse_form
from schemas.records import STATUS_SAVED, FormKey, FormRecord
from service.accounts.login import ROLE_CANDIDATE
from service.core import codec
from service.core.ids import make_id
from service.core.names import names_of
from service.core.ports import Inbound
from service.core.settings import Settings
from service.core.tokens import Claims, TokenSigner
from service.storage.mysql_db import MySQLDatabase
from service.storage.mysql_migrate import drop_database, migrate
from service.storage.mysql_parts import open_database
from service.storage.rabbit import open_broker
from service.storage.redis_cache import RedisCache
from tests.harness import isolated
from tests.proxy import Proxy
from tests.support import (
    OPEN_BATCH,
    RUN,
    TEST_MYSQL,
    choices,
    form_url,
    make_settings,
    settings_env,
    start_volreg,
    wait_for_mysql,
)


def _keys(region: int, count: int) -> list[FormKey]:
    return [FormKey(make_id(region, "20070606", i), OPEN_BATCH) for i in range(count)]


async def _proxy_for(url: str) -> Proxy:
    target = urlsplit(url)
    proxy = Proxy(target.hostname or "127.0.0.1", target.port or 0)
    await proxy.start()
    return proxy


class SlowProxy:
    """Forwards a connection, holding back every chunk from the server while ``slow``: the
    broker's publisher confirms arrive late, so saves stay in flight."""

    def __init__(self, host: str, port: int, delay_s: float) -> None:
        self._target = (host, port)
        self._delay_s = delay_s
        self.slow = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        for src, dst, slow in ((reader, up_writer, False), (up_reader, writer, True)):
            task = asyncio.create_task(self._pipe(src, dst, slow), name="slow-proxy-pipe")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, slow: bool) -> None:
        # Each chunk goes out ``delay_s`` after it arrived, in order: late, not serialised.
        chunks: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def send() -> None:
            while True:
                due, data = await chunks.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if data is None:  # the other side closed
                    return
                dst.write(data)
                await dst.drain()

        sender = asyncio.create_task(send(), name="slow-proxy-send")
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await src.read(65536):
                chunks.put_nowait(
                    (loop.time() + (self._delay_s if slow and self.slow else 0), data)
                )
        chunks.put_nowait((loop.time(), None))
        with contextlib.suppress(OSError):
            await sender
        dst.transport.abort()


async def test_sigterm_lets_in_flight_saves_finish_and_each_is_durable(
    settings: Settings, db: MySQLDatabase, consumer: None
) -> None:
    target = urlsplit(settings.amqp_url)
    proxy = SlowProxy(target.hostname or "127.0.0.1", target.port or 5672, delay_s=1.5)
    await proxy.start()
    port = free_port()
    amqp = settings.amqp_url.replace(f"{target.hostname}:{target.port}", f"127.0.0.1:{proxy.port}")
    env = settings_env(dataclasses.replace(settings, http_port=port, amqp_url=amqp))
    api = start_volreg("serve", env)
    base = f"http://127.0.0.1:{port}"
    keys = _keys(130102, 8)
    signer = TokenSigner(settings.token_secret)
    expires = int(time.time()) + 600
    terminated = False
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(base + "/health/ready") as resp:
                        if resp.status == 200:
                            break
                assert time.monotonic() < deadline, "API not ready"
                await asyncio.sleep(0.2)

            async def save(i: int, key: FormKey) -> tuple[int, dict[str, object]]:
                token = signer.issue(Claims(key.candidate_id, ROLE_CANDIDATE, expires))
                async with http.put(
                    base + form_url(key.candidate_id, key.batch),
                    json={"choices": choices(2, i)},
                    headers={"Authorization": f"Bearer {token}"},
                ) as resp:
                    return resp.status, await resp.json()

            proxy.slow = True  # every confirm now takes 1.5 s
            saves = [asyncio.create_task(save(i, k)) for i, k in enumerate(keys)]
            await asyncio.sleep(0.7)  # all requests are inside their handlers
            api.send_signal(signal.SIGTERM)
            terminated = True
            results = await asyncio.gather(*saves)
        assert [status for status, _ in results] == [200] * len(keys), results
        for key, (_, body) in zip(keys, results, strict=True):
            record = await wait_for_mysql(db, key, int(str(body["version"])))
            assert (
                codec.unpack(record.payload)
                == parse_form({"choices": choices(2, keys.index(key))}).model_dump()["choices"]
            )
    finally:
        if api.poll() is None and not terminated:
            api.send_signal(signal.SIGTERM)  # once: a second SIGTERM cuts the drain short
        _, err = await asyncio.to_thread(api.communicate, timeout=30)
        await proxy.close()
    assert api.returncode == 0, [ln for ln in err.decode().splitlines() if "volreg.http" not in ln][
        -20:
    ]


async def test_mysql_down_saves_keep_succeeding_and_the_consumer_drains_when_it_returns(
    settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    proxy = await _proxy_for(settings.mysql_dsn)
    proxied = dataclasses.replace(settings, mysql_dsn=proxy.url(settings.mysql_dsn))
    keys = _keys(120101, 20)
    async with open_database(proxied) as via_proxy, isolated(proxied, via_proxy, cache) as h:
        stop = asyncio.Event()
        writer = asyncio.create_task(h.writer.run(h.inbox, stop), name="test-consumer-mysql-down")
        try:
            first = await h.forms.save(
                keys[0], parse_form({"choices": choices(1)}), None, datetime.now()
            )
            await wait_for_mysql(db, keys[0], first.version)

            await proxy.cut()
            acked = {}
            for i, key in enumerate(keys[1:], start=1):
                form = parse_form({"choices": choices(2, i)})
                acked[key] = ((await h.forms.save(key, form, None, datetime.now())).version, i)
            await asyncio.sleep(0.5)
            assert [await db.get_form(k) for k in acked] == [None] * len(acked), "MySQL was down"

            await proxy.restore()
            for key, (version, i) in acked.items():
                await wait_for_mysql(db, key, version, timeout=30, choices=choices(2, i))
        finally:
            stop.set()
            writer.cancel()  # it would retry a cut MySQL for ever after a failed assertion
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            with contextlib.suppress(OSError):
                await proxy.cut()


async def test_a_consumer_stops_on_request_while_mysql_is_down_leaving_its_batch_unacked(
    settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    proxy = await _proxy_for(settings.mysql_dsn)
    proxied = dataclasses.replace(settings, mysql_dsn=proxy.url(settings.mysql_dsn))
    key = _keys(120102, 1)[0]
    async with (
        open_database(proxied) as via_proxy,
        isolated(proxied, via_proxy, cache, consume=False) as h,
    ):
        saved = await h.forms.save(key, parse_form({"choices": choices(1)}), None, datetime.now())
        await proxy.cut()
        names = names_of(h.settings)
        async with open_broker(h.settings, names) as first_consumer:
            await first_consumer.wait_connected(10)
            inbox: asyncio.Queue[Inbound] = asyncio.Queue()
            await first_consumer.consume(inbox.put)
            stop = asyncio.Event()
            writer = asyncio.create_task(h.writer.run(inbox, stop), name="test-consumer-stop")
            await asyncio.sleep(1.0)  # its batch is now being retried against the cut MySQL
            stop.set()
            async with asyncio.timeout(10):
                await writer  # returns by itself, no cancel needed
        # It did not ack: with its connection gone the broker hands the message to the next
        # consumer, which writes it once MySQL is back.
        await proxy.restore()
        async with open_broker(h.settings, names) as next_consumer:
            await next_consumer.wait_connected(10)
            again: asyncio.Queue[Inbound] = asyncio.Queue()
            await next_consumer.consume(again.put)
            async with asyncio.timeout(20):
                delivery = await again.get()
            await h.writer.apply([delivery])
    row = await wait_for_mysql(db, key, saved.version, choices=choices(1))
    assert row.version == saved.version
    with contextlib.suppress(OSError):
        await proxy.cut()


async def test_a_consumer_resumes_after_its_broker_connection_drops(
    settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    proxy = await _proxy_for(settings.amqp_url)
    async with isolated(settings, db, cache, consume=False) as h:
        behind_proxy = dataclasses.replace(h.settings, amqp_url=proxy.url(settings.amqp_url))
        inbox: asyncio.Queue[Inbound] = asyncio.Queue()
        async with open_broker(behind_proxy, names_of(behind_proxy)) as consumer:
            await consumer.wait_connected(10)
            await consumer.consume(inbox.put)
            key = _keys(110108, 1)[0]
            for version in (1_000, 2_000):
                record = FormRecord(
                    key.candidate_id,
                    key.batch,
                    version,
                    version,
                    STATUS_SAVED,
                    codec.pack([version]),
                )
                await h.broker.publish(record)
                async with asyncio.timeout(20):
                    while True:  # an ack lost with the connection means a redelivery
                        delivery = await inbox.get()
                        await delivery.ack()
                        if delivery.headers["version"] == version:
                            break
                # Drop the consumer's connection (the broker stays up) and let it reconnect.
                await proxy.cut()
                await asyncio.sleep(0.5)
                await proxy.restore()
        await proxy.cut()


@pytest.fixture
async def own_db() -> AsyncIterator[Settings]:
    s = make_settings(key_prefix=f"t{RUN}wu", mysql_dsn=f"{TEST_MYSQL}/volreg_test_{RUN}_wu")
    await migrate(s)
    yield s
    await drop_database(s)
    async with open_index(s, names_of(s)) as index:
        keys = [k async for k in index.client.scan_iter(match=f"{{{s.key_prefix}:*", count=1000)]
        if keys:
            await index.client.delete(*keys)


async def test_warmup_reloads_every_form_and_never_replaces_a_newer_save(own_db: Settings) -> None:
    s = own_db
    keys = _keys(310104, 300)
    now_us = int(time.time() * 1e6)
    stored = [
        FormRecord(
            k.candidate_id,
            k.batch,
            now_us + i,
            now_us + i,
            STATUS_SAVED,
            codec.pack(choices(1 + i % 5, i)),
        )
        for i, k in enumerate(keys)
    ]
    async with open_archive(s) as archive, open_index(s, names_of(s)) as index:
        await archive.upsert_forms(stored)
        newer = dataclasses.replace(
            stored[7], version=now_us + 10_000, payload=codec.pack(["newer"])
        )
        assert await index.commit(newer, None, "")  # a save that landed while Redis was empty
        done: list[int] = []
        report = await warm_up(archive, index, page=64, progress=done.append, writers=3)
        assert report.forms == len(keys) and sum(done) == len(keys)
        assert report.applied == len(keys) - 1
        for record in stored:
            expected = newer if record.key == newer.key else record
            assert await index.read(record.key) == expected

    # The command: everything is current now, so it writes nothing.
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "service.main.cli", "warmup", "--batch", "100"],
        env=settings_env(s),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"warm-up: {len(keys)} forms" in out.stdout and "0 written" in out.stdout, out.stdout
