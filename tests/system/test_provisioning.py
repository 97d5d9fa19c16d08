"""The servers `make test` provisions: credentials of our own, checks that log in as the
application, and a second run that changes nothing (scripts/ensure-deps.sh)."""

from __future__ import annotations

import subprocess
import sys
from urllib.parse import urlsplit

import aio_pika
import pytest
import redis.asyncio as redis
from aio_pika.exceptions import ProbableAuthenticationError

from tests.support import ROOT, SERVERS


async def test_redis_refuses_a_client_without_the_password() -> None:
    url = urlsplit(SERVERS.redis_url)
    assert url.password, "the application's Redis URL carries a password"
    anonymous = redis.Redis(host=url.hostname or "127.0.0.1", port=url.port or 6379)
    try:
        with pytest.raises(redis.AuthenticationError):
            await anonymous.ping()
    finally:
        await anonymous.aclose()
    authenticated = redis.Redis.from_url(SERVERS.redis_url)
    try:
        assert await authenticated.ping()
    finally:
        await authenticated.aclose()


async def test_the_broker_has_our_user_and_vhost_and_no_guest() -> None:
    url = urlsplit(SERVERS.amqp_url)
    assert url.username and url.username != "guest"
    assert url.password and url.password != "guest"
    assert url.path.strip("/"), "the application uses a vhost of its own"
    connection = await aio_pika.connect(SERVERS.amqp_url, timeout=5)
    await connection.close()
    guest = f"amqp://guest:guest@{url.hostname}:{url.port}/"
    with pytest.raises(ProbableAuthenticationError):
        await aio_pika.connect(guest, timeout=5)


def _amqp_login(user: str, password: str, vhost: str) -> int:
    url = urlsplit(SERVERS.amqp_url)
    script = ROOT / "scripts" / "amqp_login.py"
    args = [str(url.hostname), str(url.port), user, password, vhost]
    return subprocess.run([sys.executable, str(script), *args], capture_output=True).returncode


def test_the_readiness_check_logs_in_as_the_application() -> None:
    url = urlsplit(SERVERS.amqp_url)
    user, password, vhost = str(url.username), str(url.password), url.path.strip("/")
    assert _amqp_login(user, password, vhost) == 0
    assert _amqp_login(user, password + "x", vhost) == 1
    assert _amqp_login(user, password, vhost + "-missing") == 1


def test_mysql_user_is_the_applications_own() -> None:
    url = urlsplit(SERVERS.mysql_dsn)
    assert url.username not in {None, "", "root"}
    assert url.password, "the application's MySQL user has a password"


def test_a_second_run_starts_nothing_and_installs_nothing() -> None:
    run = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ensure-deps.sh")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "packages: all installed" in out
    assert "starting" not in out and "apt:" not in out, out
    for name in ("redis", "rabbitmq", "mariadb"):
        assert f"{name}: running" in out, out
    assert "now holds" not in out, out  # no MariaDB grant changed either
