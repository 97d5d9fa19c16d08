"""`volreg status` on the test run's servers: every server answering, the recorded shard count,
the run's queues, and a wrong shard count or a server down turning the exit code to 1."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

from service.core.names import names_of
from service.core.settings import Settings
from tests.support import settings_env


def _status(settings: Settings) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.main.cli", "status"],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_status_shows_servers_queues_and_runs(settings: Settings) -> None:
    done = _status(settings)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for server in ("redis", "broker", "mysql"):
        assert f"  {server:<8} ok" in out
    assert f"shards {settings.shards}, queues {settings.queues} (as recorded by migrate)" in out
    names = names_of(settings)
    for queue in [*names.all_queues, names.dead_letter_queue]:
        assert queue in out
    assert "last reconcile runs:" in out and "imports running:" in out
    assert "not read" not in out
    assert settings.token_secret not in out


def test_status_exits_1_on_a_wrong_shard_count_or_a_server_down(settings: Settings) -> None:
    done = _status(dataclasses.replace(settings, shards=128))
    assert done.returncode == 1
    assert "MISMATCH" in done.stdout
    down = dataclasses.replace(settings, redis_url="redis://127.0.0.1:1/0")
    done = _status(down)
    assert done.returncode == 1
    assert "  redis    DOWN" in done.stdout
