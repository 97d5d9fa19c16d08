"""deploy/nginx in front of two real API processes: both get traffic, and nginx enforces the
body size and request-rate limits with the API's JSON error format."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from schemas import urls
from service.accounts.login import ROLE_ADMIN
from service.core.settings import Settings
from service.core.tokens import Claims, TokenSigner
from tests.support import DEMO_ID, settings_env

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "nginx"
_START_S = 30.0


def _spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _nginx() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found is None:
        # make test runs scripts/ensure-deps.sh, which installs it: missing means broken set-up.
        pytest.fail("nginx is not installed (scripts/ensure-deps.sh installs Debian's nginx)")
    return found


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def instances(settings: Settings) -> Iterator[list[int]]:
    """Two `volreg serve` processes on spare ports, on the test run's servers."""
    ports = [_spare_port(), _spare_port()]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "service.main.cli", "serve"],
            env=settings_env(dataclasses.replace(settings, http_port=port)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        yield ports
    finally:
        for proc in procs:
            _stop(proc)


@pytest.fixture
def nginx(instances: list[int], tmp_path: Path) -> Iterator[int]:
    with _nginx_in_front_of(instances, tmp_path) as port:
        yield port


@contextlib.contextmanager
def _nginx_in_front_of(upstreams: list[int], tmp_path: Path) -> Iterator[int]:
    """nginx with deploy/nginx's configuration (only the listen port and the upstream list
    differ), a prefix of its own, run in the foreground and stopped by its PID."""
    port = _spare_port()
    conf = tmp_path / "conf"
    conf.mkdir()
    shutil.copy(DEPLOY / "volreg-proxy.conf", conf)
    site = (DEPLOY / "volreg.conf").read_text()
    site, found = re.subn(r"^(\s*)listen 80\b", rf"\1listen 127.0.0.1:{port}", site, flags=re.M)
    assert found == 1, "volreg.conf must listen on port 80 exactly once"
    (conf / "volreg.conf").write_text(site)
    (conf / "volreg-upstreams.conf").write_text(
        "".join(f"server 127.0.0.1:{p} max_fails=3 fail_timeout=5s;\n" for p in upstreams)
    )
    temp = tmp_path / "temp"
    temp.mkdir()
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach the temp dirs
    (conf / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n  access_log off;\n"
        + "".join(
            f"  {kind}_temp_path {temp}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + "  include volreg.conf;\n}\n"
    )
    binary = _nginx()
    check = subprocess.run(
        [binary, "-t", "-p", str(tmp_path), "-c", str(conf / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(
        [binary, "-p", str(tmp_path), "-c", str(conf / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield port
    finally:
        _stop(proc)


@contextlib.asynccontextmanager
async def _session() -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        yield session


async def _wait_ready(session: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + _START_S
    while True:
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(url) as resp:
                if resp.status == 200:
                    return
        assert time.monotonic() < deadline, f"{url} did not become ready"
        await asyncio.sleep(0.2)


async def _exam_requests_served(session: aiohttp.ClientSession, port: int, admin: str) -> float:
    """How many exam requests this instance answered, from its own /metrics (admins only)."""
    headers = {"Authorization": f"Bearer {admin}"}
    async with session.get(f"http://127.0.0.1:{port}{urls.METRICS}", headers=headers) as resp:
        text = await resp.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("volreg_http_requests_total{") and "/exam" in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_nginx_spreads_requests_and_enforces_body_and_rate_limits(
    instances: list[int], nginx: int, settings: Settings
) -> None:
    admin = TokenSigner(settings.token_secret).issue(
        Claims("ops", ROLE_ADMIN, int(time.time()) + 600)
    )
    base = f"http://127.0.0.1:{nginx}"
    exam = base + urls.EXAM.format(candidate_id=DEMO_ID)
    async with _session() as session:
        for port in instances:
            await _wait_ready(session, f"http://127.0.0.1:{port}/health/ready")
        await _wait_ready(session, base + "/health/ready")

        # Routing: sequential requests (well under the burst) reach both instances.
        for _ in range(20):
            async with session.get(exam) as resp:
                assert resp.status == 401  # no token: answered by an instance
                assert resp.headers["Content-Type"].startswith("application/json")
        served = [await _exam_requests_served(session, p, admin) for p in instances]
        assert sum(served) == 20 and all(n > 0 for n in served), served

        # Body size: refused by nginx before any instance sees it, in the API's format.
        form = base + urls.FORM.format(candidate_id=DEMO_ID, batch="undergrad-1")
        async with session.put(form, data=b"x" * (100 * 1024)) as resp:
            assert resp.status == 413
            assert (await resp.json())["error"]["code"] == "payload_too_large"
        assert [await _exam_requests_served(session, p, admin) for p in instances] == served

        # Rate: a burst far beyond the limit (50 r/s, burst 100) gets 429 with Retry-After.
        await asyncio.sleep(2.5)  # the bucket refills after the requests above

        async def one() -> tuple[int, str, str]:
            async with session.get(exam) as resp:
                return resp.status, resp.headers.get("Retry-After", ""), await resp.text()

        results = await asyncio.gather(*(one() for _ in range(400)))
        statuses = [status for status, _, _ in results]
        assert set(statuses) <= {401, 429}, set(statuses)
        assert statuses.count(429) > 0 and statuses.count(401) > 0, statuses.count(429)
        limited = next(r for r in results if r[0] == 429)
        assert limited[1] == "1" and '"rate_limited"' in limited[2]


class _Dropping:
    """An upstream that reads a whole request, records it, then closes the connection without
    answering: an instance that died with the request in hand."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> _Dropping:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ValueError):
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            method, path, _ = head.split(" ", 2)
            length = re.search(r"(?im)^content-length:\s*(\d+)", head)
            if length:
                await reader.readexactly(int(length.group(1)))
            self.seen.append((method, path))
        writer.transport.abort()


async def test_nginx_never_sends_a_put_twice_but_retries_reads(tmp_path: Path) -> None:
    async with _Dropping() as first, _Dropping() as second:
        with _nginx_in_front_of([first.port, second.port], tmp_path) as port:
            base = f"http://127.0.0.1:{port}"
            form = base + urls.FORM.format(candidate_id=DEMO_ID, batch="undergrad-1")
            async with _session() as session:
                deadline = time.monotonic() + _START_S
                while True:  # nginx is up once it answers at all
                    with contextlib.suppress(aiohttp.ClientError):
                        async with session.get(base + "/metrics") as resp:
                            if resp.status == 404:
                                break
                    assert time.monotonic() < deadline, "nginx did not start"
                    await asyncio.sleep(0.1)

                async with session.put(form, json={"choices": []}) as resp:
                    assert resp.status == 503
                    assert resp.headers["Retry-After"] == "2"
                    assert (await resp.json())["error"]["code"] == "unavailable"
                puts = [s for s in first.seen + second.seen if s[0] == "PUT"]
                assert len(puts) == 1, puts  # the instance that may have saved it, only

                # The same kind of failure on a read: nginx tries the other instance.
                async with session.get(base + urls.CATALOGUE_BATCHES) as resp:
                    assert resp.status == 503
                gets = [s for s in first.seen + second.seen if s[0] == "GET"]
                assert len(gets) == 2, gets

                # Error pages still speak JSON on the PUT path (a body over the limit).
                async with session.put(form, data=b"x" * (100 * 1024)) as resp:
                    assert resp.status == 413
                    assert (await resp.json())["error"]["code"] == "payload_too_large"
                # Which instance gets a request is nginx's choice: a second PUT too is sent once.
                async with session.put(form, json={"choices": []}) as resp:
                    assert resp.status == 503
                assert len([s for s in first.seen + second.seen if s[0] == "PUT"]) == 2
