"""Readiness is about this process; a shared dependency's outage shows in /health/deps and the
metrics, never in /health/ready (which would take every API process out at once)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from schemas import urls
from schemas.records import FormKey
from service.core.settings import Settings
from service.http import keys, openapi
from service.storage.mysql_db import MySQLDatabase
from tests.conftest import ClientFactory
from tests.proxy import Proxy
from tests.support import (
    DEMO_ID,
    OPEN_BATCH,
    admin_headers,
    choices,
    form_url,
    login,
    wait_for_mysql,
)

Client = TestClient[Any, Any]


async def _status(client: Client, path: str) -> tuple[int, dict[str, Any]]:
    resp = await client.get(path)
    return resp.status, dict(await resp.json())


async def _metric(client: Client, line_start: str) -> float:
    headers = admin_headers(client.app[keys.SETTINGS])
    text = await (await client.get(urls.METRICS, headers=headers)).text()
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric line starting with {line_start!r}")


async def _until(client: Client, path: str, status: int, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if (await client.get(path)).status == status:
                return
            await asyncio.sleep(0.1)


async def test_mysql_cut_keeps_ready_and_saves_go_on(
    make_client: ClientFactory,
    consumer: None,
    settings: Settings,
    mysql_proxy: Proxy,
    db: MySQLDatabase,
) -> None:
    client = await make_client(mysql_dsn=mysql_proxy.url(settings.mysql_dsn), probe_interval_s=0.2)
    headers = await login(client)  # a candidate's login reads MySQL: before the cut
    await _until(client, urls.DEPS, 200)
    # The first save loads the catalogue (the filing windows, the institutions) into the
    # process's cache and Redis; later ones need no MySQL.
    resp = await client.put(form_url(), json={"choices": choices(2, 39)}, headers=headers)
    assert resp.status == 200, await resp.text()

    await mysql_proxy.cut()
    try:
        status, body = await _status(client, urls.DEPS)
        assert status == 503
        assert body["checks"]["mysql"].startswith("down")
        await asyncio.sleep(0.5)  # a few background probes see MySQL down
        status, body = await _status(client, urls.READY)
        assert status == 200, body
        assert body["checks"]["mysql"] == "reconnecting"
        assert await _metric(client, 'volreg_dependency_up{dependency="mysql"}') == 0.0
        assert await _metric(client, 'volreg_dependency_up{dependency="redis"}') == 1.0
        versions = []
        for salt in range(3):
            resp = await client.put(
                form_url(), json={"choices": choices(2, 40 + salt)}, headers=headers
            )
            assert resp.status == 200, await resp.text()
            versions.append((await resp.json())["version"])
        assert (await client.get(urls.READY)).status == 200
    finally:
        await mysql_proxy.restore()
    await _until(client, urls.DEPS, 200)
    # The consumer (on its own path to MySQL) persisted what was saved meanwhile.
    await wait_for_mysql(db, FormKey(DEMO_ID, OPEN_BATCH), versions[-1])


async def test_redis_cut_keeps_ready_and_reads_come_from_mysql(
    make_client: ClientFactory,
    consumer: None,
    settings: Settings,
    redis_proxy: Proxy,
    db: MySQLDatabase,
) -> None:
    client = await make_client(redis_url=redis_proxy.url(settings.redis_url), probe_interval_s=0.2)
    headers = await login(client)
    resp = await client.put(form_url(), json={"choices": choices(3, 50)}, headers=headers)
    assert resp.status == 200, await resp.text()
    saved = await resp.json()
    await wait_for_mysql(db, FormKey(DEMO_ID, OPEN_BATCH), saved["version"])

    await redis_proxy.cut()
    try:
        await asyncio.sleep(0.5)
        status, body = await _status(client, urls.READY)
        assert status == 200, body
        assert body["checks"]["redis"] == "reconnecting"
        assert (await client.get(urls.DEPS)).status == 503
        for _ in range(3):
            resp = await client.get(form_url(), headers=headers)
            assert resp.status == 200, await resp.text()
            body = await resp.json()
            assert body["version"] == saved["version"]
            assert body["choices"] == choices(3, 50)
    finally:
        await redis_proxy.restore()
    await _until(client, urls.DEPS, 200)


async def test_broker_cut_keeps_ready_while_the_link_reconnects(
    make_client: ClientFactory, settings: Settings, broker_proxy: Proxy
) -> None:
    client = await make_client(amqp_url=broker_proxy.url(settings.amqp_url), probe_interval_s=0.2)
    await broker_proxy.cut()
    try:
        await asyncio.sleep(0.5)
        status, body = await _status(client, urls.READY)
        assert status == 200, body
        assert body["checks"]["broker"] == "reconnecting"
        assert "broker_link" not in body["checks"]  # named only when its machinery failed
        assert (await client.get(urls.DEPS)).status == 503
    finally:
        await broker_proxy.restore()
    await _until(client, urls.DEPS, 200)


async def test_a_new_process_waits_for_its_first_connections_then_for_the_grace_only(
    make_client: ClientFactory, settings: Settings, broker_proxy: Proxy
) -> None:
    await broker_proxy.cut()  # the broker is unreachable before the process starts
    client = await make_client(
        wait_broker=False,
        amqp_url=broker_proxy.url(settings.amqp_url),
        probe_interval_s=0.2,
        ready_connect_grace_s=1.5,
    )
    status, body = await _status(client, urls.READY)
    assert status == 503, body
    assert body["checks"]["broker"] == "connecting"
    # A broker down for everybody must not keep new processes out for ever: reads still work.
    await _until(client, urls.READY, 200, timeout=10)
    await broker_proxy.restore()
    await _until(client, urls.DEPS, 200)
    _, body = await _status(client, urls.READY)
    assert body["checks"]["broker"] == "established"


async def test_the_api_serves_its_document_and_docs_page(make_client: ClientFactory) -> None:
    client = await make_client()
    resp = await client.get(urls.OPENAPI)
    assert resp.status == 200
    assert await resp.read() == openapi.OUTPUT.read_bytes()
    resp = await client.get(urls.DOCS)
    assert resp.status == 200
    assert urls.DOCS_SCRIPT in await resp.text()
