"""The shard count is recorded by `volreg migrate` and every process refuses another one: a
changed VOLREG_SHARDS would silently map every candidate to another slot, queue and shard."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import AsyncIterator

import asyncmy
import pytest
from aiohttp.test_utils import TestClient, TestServer

from service.core.settings import Settings
from service.core.settings_rules import SettingsError
from service.main.wiring import create_app
from service.storage.mysql_db import pool_kwargs
from service.storage.mysql_migrate import check_shard_count, drop_database, migrate
from tests.support import RUN, TEST_MYSQL, make_settings, settings_env


@pytest.fixture(scope="module")
async def recorded() -> AsyncIterator[Settings]:
    s = make_settings(mysql_dsn=f"{TEST_MYSQL}/volreg_test_{RUN}_shards", shards=64, queues=2)
    await migrate(s)
    yield s
    await drop_database(s)


async def test_migrate_records_and_checks_refuse_another_count(recorded: Settings) -> None:
    await check_shard_count(recorded)  # the recorded count passes
    other = dataclasses.replace(recorded, shards=128)
    with pytest.raises(SettingsError, match=r"VOLREG_SHARDS=128: .* migrated with 64 shards"):
        await check_shard_count(other)
    with pytest.raises(SettingsError, match="migrated with 64 shards"):
        await migrate(other)  # migrate does not silently re-record it either
    await migrate(recorded)  # the same count again is fine


async def test_reshard_is_deliberate(recorded: Settings) -> None:
    other = dataclasses.replace(recorded, shards=32)
    await migrate(other, reshard=True)
    await check_shard_count(other)
    with pytest.raises(SettingsError):
        await check_shard_count(recorded)
    await migrate(recorded, reshard=True)


async def test_an_unmigrated_database_is_refused() -> None:
    s = make_settings(mysql_dsn=f"{TEST_MYSQL}/volreg_test_{RUN}_bare")
    await migrate(s)
    bare = dataclasses.replace(s, mysql_dsn=f"{TEST_MYSQL}/volreg_test_{RUN}_bare")
    # A database from before the record existed: the table is there but holds no row.
    conn = await asyncmy.connect(**pool_kwargs(bare))
    async with conn.cursor() as cur:
        await cur.execute("DELETE FROM volreg_settings")
    conn.close()
    try:
        with pytest.raises(SettingsError, match="run `volreg migrate`"):
            await check_shard_count(bare)
    finally:
        await drop_database(s)


async def test_the_api_does_not_start_with_another_count(recorded: Settings) -> None:
    client = TestClient(TestServer(create_app(dataclasses.replace(recorded, shards=128))))
    with pytest.raises(SettingsError, match="migrated with 64 shards"):
        await client.start_server()
    await client.close()


def test_the_consumer_exits_2_with_the_reason(recorded: Settings) -> None:
    env = settings_env(dataclasses.replace(recorded, shards=128, consumer_http_port=0))
    done = subprocess.run(
        [sys.executable, "-m", "service.main.cli", "consume"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "migrated with 64 shards" in done.stderr
    assert "Traceback" not in done.stderr
