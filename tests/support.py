"""Helpers shared by the tests: settings per test run, login, waiting for the consumer."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from aiohttp.test_utils import TestClient

from schemas import urls
from schemas.http import parse_form
from schemas.records import FormKey, FormRecord
from service.core import codec
from service.core.ids import make_id
from service.core.logs import JsonFormatter
from service.core.ports import Database
from service.core.settings import ENV_FILE, Settings, environment

RUN = uuid.uuid4().hex[:8]
# One per run (every API of the run must accept the others' tokens), long enough that
# `volreg serve` accepts it outside development mode.
TOKEN_SECRET = f"test-secret-{RUN}-{uuid.uuid4().hex}"
DEMO_ID = "11010519491231002X"
OTHER_ID = make_id(110105, "20070101", 1)
PASSWORD = "demo-password"
OPEN_BATCH = "undergrad-1"
CLOSED_BATCH = "closed-1"


# The checkout, wherever this module sits in the test tree.
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
# The servers `make test` started, with the credentials it generated (scripts/credentials.sh).
SERVERS = Settings.from_env(environment({**os.environ, "VOLREG_ENV_FILE": str(ROOT / ENV_FILE)}))


def _server_of(dsn: str) -> str:
    """A MySQL DSN without its database: tests create databases of their own there."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


# VOLREG_TEST_* point the suites at other servers (tests/system/cluster/topology.py does).
TEST_MYSQL = os.environ.get("VOLREG_TEST_MYSQL", _server_of(SERVERS.mysql_dsn))
TEST_REDIS = os.environ.get("VOLREG_TEST_REDIS", SERVERS.redis_url)
TEST_AMQP = os.environ.get("VOLREG_TEST_AMQP", SERVERS.amqp_url)
# The schema owner the suites create, migrate and drop their databases as (scripts/
# ensure-deps.sh sets one up on its own MariaDB); empty: the application's user.
TEST_MIGRATE_USER = os.environ.get("VOLREG_TEST_MYSQL_MIGRATE_USER", SERVERS.mysql_migrate_user)
TEST_MIGRATE_PASSWORD = os.environ.get(
    "VOLREG_TEST_MYSQL_MIGRATE_PASSWORD", SERVERS.mysql_migrate_password
)


def volreg_bare(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``volreg ARGS`` with no VOLREG_* setting but ``env``'s and no env file: the command
    line as a bare machine sees it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VOLREG_")}
    return subprocess.run(
        [sys.executable, "-m", "service.main.cli", *args],
        env={**clean, "VOLREG_ENV_FILE": "/nonexistent", **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def make_settings(**overrides: Any) -> Settings:
    """Settings isolated to this test run: own database, key prefix and queue names."""
    database = f"{TEST_MYSQL}/volreg_test_{RUN}"
    base = Settings(
        mysql_dsn=database,
        mysql_migrate_user=TEST_MIGRATE_USER,
        mysql_migrate_password=TEST_MIGRATE_PASSWORD,
        redis_cluster_nodes=os.environ.get("VOLREG_TEST_REDIS_CLUSTER_NODES", ""),
        redis_cluster_password=os.environ.get("VOLREG_TEST_REDIS_CLUSTER_PASSWORD", ""),
        redis_url=TEST_REDIS,
        amqp_url=TEST_AMQP,
        key_prefix=f"t{RUN}",
        queue_prefix=f"volreg-test-{RUN}",
        token_secret=TOKEN_SECRET,
        queues=2,
        redis_timeout_s=1.0,
        broker_timeout_s=3.0,
        mysql_timeout_s=3.0,
        retry_after_s=1,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        consume_wait_ms=10,
        # `make test-rocketmq`: the same suites on RocketMQ (scripts/rocketmq.sh started it).
        broker=os.environ.get("VOLREG_TEST_BROKER", "rabbitmq"),
        # `make test-rocketmq` runs the save and protocol suites again with transactional saves.
        rocketmq_transactions=os.environ.get("VOLREG_TEST_ROCKETMQ_TRANSACTIONS") == "1",
        rocketmq_invisible_s=10,
        consumer_http_port=0,  # consumers started by tests run side by side
        # The suites save far faster than a person; tests/integration/test_save_limits.py
        # turns both limits on.
        save_rate_limit=0,
        idempotency_keys_max=0,
    )
    settings = dataclasses.replace(base, **overrides)
    # `make test-cluster` (tests/system/cluster/topology.py) runs the suites on a Redis Cluster and
    # on MySQL split in two halves of the shards, whatever their number.
    if os.environ.get("VOLREG_TEST_MYSQL_SHARDED") == "1" and "mysql_shards" not in overrides:
        half, dsn = settings.shards // 2, settings.mysql_dsn
        halves = f"0-{half - 1}={dsn}_a,{half}-{settings.shards - 1}={dsn}_b"
        settings = dataclasses.replace(settings, mysql_shards=halves)
    return settings


def settings_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLREG_")}
    for field in dataclasses.fields(settings):
        env[f"VOLREG_{field.name.upper()}"] = str(getattr(settings, field.name))
    return env


def form_url(candidate_id: str = DEMO_ID, batch: str = OPEN_BATCH) -> str:
    return urls.FORM.format(candidate_id=candidate_id, batch=batch)


def choices(n: int, salt: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "institution": f"{10001 + i:05d}",
            "majors": [f"{80901 + (salt + j) % 90:06d}" for j in range(1 + (i + salt) % 6)],
            "accept_adjustment": (i + salt) % 2 == 0,
        }
        for i in range(n)
    ]


async def login(client: TestClient[Any, Any], candidate_id: str = DEMO_ID) -> dict[str, str]:
    resp = await client.post(urls.LOGIN, json={"candidate_id": candidate_id, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    return {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def wait_for_mysql(
    db: Database,
    key: FormKey,
    version: int,
    timeout: float = 20.0,
    choices: list[dict[str, Any]] | None = None,
) -> FormRecord:
    """Poll until MySQL holds ``version`` or newer for ``key``. With ``choices`` (the body
    acknowledged with ``version``), a row at exactly that version must hold that content: a
    durable version with other content would be a loss too."""
    deadline = time.monotonic() + timeout
    while True:
        record = await db.get_form(key)
        if record is not None and record.version >= version:
            if choices is not None and record.version == version:
                assert stored_choices(record) == as_stored(choices), (key, version)
            return record
        if time.monotonic() > deadline:
            held = record.version if record else None
            raise AssertionError(f"MySQL holds {held} for {key}, expected >= {version}")
        await asyncio.sleep(0.05)


def as_stored(choices: list[dict[str, Any]]) -> list[Any]:
    """A save body's choices the way the service stores them (defaults filled in)."""
    return list(parse_form({"choices": choices}).model_dump()["choices"])


def stored_choices(record: FormRecord) -> list[Any]:
    return list(codec.unpack(record.payload))


def start_volreg(command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``volreg COMMAND`` in a child process; its log goes to a pipe the test may read."""
    return subprocess.Popen(
        [sys.executable, "-m", "service.main.cli", command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def admin_headers(settings: Settings) -> dict[str, str]:
    """An admin's bearer token for the run's secret (/metrics needs the admin role)."""
    from service.core.tokens import Claims, TokenSigner

    token = TokenSigner(settings.token_secret).issue(Claims("ops", "admin", int(time.time()) + 600))
    return {"Authorization": f"Bearer {token}"}


class LogLines(logging.Handler):
    """Log lines as the service writes them (JSON, formatted when emitted, so in the context
    of the code that logged: its request id)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(orjson.loads(self.format(record)))


@contextmanager
def captured(name: str, level: int = logging.INFO) -> Iterator[LogLines]:
    """The lines logger ``name`` writes meanwhile, at ``level`` and above."""
    logger = logging.getLogger(name)
    handler, before = LogLines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before)
