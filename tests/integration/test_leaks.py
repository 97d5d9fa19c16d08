"""What the API tells strangers: no framework version, no metrics without the admin role,
and slow clients cannot hold a connection open (header and body read timeouts)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiohttp.test_utils import TestClient

from schemas import urls
from service.accounts.login import ROLE_ADMIN
from service.core.settings import Settings
from service.core.tokens import Claims, TokenSigner
from tests.conftest import ClientFactory
from tests.support import DEMO_ID, login

Client = TestClient[Any, Any]


async def _raw(client: Client, data: bytes, wait_s: float, until: bytes = b"") -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it or sent
    ``until`` (at most ``wait_s``): what a slow or stalled client gets."""
    assert client.server.host is not None and client.server.port is not None
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(data)
        await writer.drain()
        chunks = []
        async with asyncio.timeout(wait_s):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
                if until and until in b"".join(chunks):
                    break
        return b"".join(chunks)
    finally:
        writer.close()


async def test_server_header_names_no_framework_version(api: Client) -> None:
    responses = [
        await api.get(urls.LIVE),
        await api.get("/no/such/route"),
        await api.get(urls.EXAM.format(candidate_id=DEMO_ID)),  # 401
        await api.post(urls.LOGIN, data=b"{", headers={"Content-Type": "application/json"}),
    ]
    for resp in responses:
        assert resp.headers["Server"] == "volreg", resp.headers


async def test_metrics_need_the_admin_role(api: Client, settings: Settings) -> None:
    assert (await api.get(urls.METRICS)).status == 401
    candidate = await login(api)
    resp = await api.get(urls.METRICS, headers=candidate)
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "forbidden"
    admin = TokenSigner(settings.token_secret).issue(
        Claims("ops", ROLE_ADMIN, int(time.time()) + 600)
    )
    resp = await api.get(urls.METRICS, headers={"Authorization": f"Bearer {admin}"})
    assert resp.status == 200 and "volreg_http_requests_total" in await resp.text()


async def test_a_scraper_token_opens_metrics_only(make_client: ClientFactory) -> None:
    scrape = "3c9d1f7b2a6e4c8d0f1b3a5c7e9d2f4a6b8c0e1d"
    client = await make_client(metrics_token=scrape)
    resp = await client.get(urls.METRICS, headers={"Authorization": f"Bearer {scrape}"})
    assert resp.status == 200 and "volreg_http_requests_total" in await resp.text()
    wrong = await client.get(urls.METRICS, headers={"Authorization": f"Bearer {scrape}x"})
    assert wrong.status == 401
    # It is no login: nothing else opens with it.
    exam = urls.EXAM.format(candidate_id=DEMO_ID)
    assert (await client.get(exam, headers={"Authorization": f"Bearer {scrape}"})).status == 401


async def test_incomplete_headers_are_cut_off(make_client: ClientFactory) -> None:
    client = await make_client(http_header_timeout_s=1.0, wait_broker=False)
    started = time.monotonic()
    # A slowloris: headers that never end. The server closes the connection by itself.
    answer = await _raw(client, b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n", 15.0)
    assert answer == b""
    assert time.monotonic() - started < 15.0
    # A connection that sends nothing at all is closed too.
    assert await _raw(client, b"", 15.0) == b""


async def test_a_body_that_stalls_is_408(make_client: ClientFactory) -> None:
    client = await make_client(http_body_timeout_s=1.0, wait_broker=False)
    body = orjson.dumps({"candidate_id": DEMO_ID, "password": "x" * 50})
    head = (
        f"POST {urls.LOGIN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    answer = await _raw(client, head + body[:10], 15.0, until=b"request_timeout")
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 408"), answer
    assert b'"code":"request_timeout"' in rest


def test_the_reconciler_checks_the_same_admin_role_name() -> None:
    from reconciler.http import ROLE_ADMIN as RECONCILER_ADMIN

    assert RECONCILER_ADMIN == ROLE_ADMIN
