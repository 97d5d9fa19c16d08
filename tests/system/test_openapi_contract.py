"""The OpenAPI document tells the truth: schemathesis generates requests from /openapi.json of a
running `volreg serve` and runs every check on the answers (no 5xx, statuses, headers and
bodies as documented, requests the document allows are not refused, requests it forbids are),
once with a candidate's token and once with an admin's, and must find nothing.

The instance has a database, key prefix and queues of its own: the admin run publishes
institutions and batches with generated contents, which the other suites must never see. The
run is bounded (examples per operation and a time budget) to fit CI on two cores."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from schemas import urls
from service.core.settings import Settings
from tests.conftest import cleanup, prepare
from tests.processes import free_port, start, stop, wait_up
from tests.staff_support import ADMIN, STAFF_PASSWORD
from tests.support import DEMO_ID, PASSWORD, RUN, TEST_MYSQL, make_settings, settings_env

# Per operation; with the coverage phase (boundaries of every constraint) this is a few
# hundred requests per role. VOLREG_TEST_SCHEMATHESIS_EXAMPLES raises it for a long run.
EXAMPLES = int(os.environ.get("VOLREG_TEST_SCHEMATHESIS_EXAMPLES", "10"))
BUDGET_S = int(os.environ.get("VOLREG_TEST_SCHEMATHESIS_MAX_TIME_S", "60"))
SEED = 20261201
CONFIG = Path(__file__).with_name("schemathesis.toml")
LOGINS = {
    "candidate": {"candidate_id": DEMO_ID, "password": PASSWORD},
    "admin": {"username": ADMIN, "password": STAFF_PASSWORD},
}


@dataclasses.dataclass(frozen=True)
class Instance:
    base: str
    settings: Settings


@pytest.fixture(scope="module")
async def instance() -> AsyncIterator[Instance]:
    settings = make_settings(
        mysql_dsn=f"{TEST_MYSQL}/volreg_test_{RUN}_contract",
        key_prefix=f"t{RUN}c",
        queue_prefix=f"volreg-test-{RUN}-contract",
        # Generated saves and logins come far faster than any person's.
        login_failures_limit=0,
        login_client_failures_limit=0,
    )
    await prepare(settings)
    port = free_port()
    proc = start(settings_env(dataclasses.replace(settings, http_port=port)), "serve")
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_up(base + urls.READY, proc)
        yield Instance(base, settings)
    finally:
        stop(proc)
        await cleanup(settings)


async def _token(base: str, body: dict[str, str]) -> str:
    async with aiohttp.ClientSession() as http, http.post(base + urls.LOGIN, json=body) as resp:
        assert resp.status == 200, await resp.text()
        token: str = (await resp.json())["token"]
        return token


def _schemathesis() -> str:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert found, "schemathesis is a dev dependency (requirements-dev.lock)"
    return found


async def _schemathesis_run(base: str, token: str, report: Path, *options: str) -> None:
    command = [
        _schemathesis(),
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        base + urls.OPENAPI,
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {token}",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        # One worker: the box has two cores and the API wants one of them.
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--report",
        "junit",
        "--report-dir",
        str(report),
        *options,
    ]
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=report
    )
    try:
        async with asyncio.timeout(BUDGET_S * 2 + 60):
            output, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text[-30_000:]


@pytest.mark.parametrize("role", ["candidate", "admin"])
async def test_schemathesis_finds_nothing(instance: Instance, role: str, tmp_path: Path) -> None:
    token = await _token(instance.base, LOGINS[role])
    # Logging out revokes every token of the account, this one included: it has its own run.
    await _schemathesis_run(
        instance.base,
        token,
        tmp_path,
        "--max-time",
        str(BUDGET_S),
        "--exclude-operation-id",
        "logout",
    )


async def test_schemathesis_finds_nothing_in_logout(instance: Instance, tmp_path: Path) -> None:
    token = await _token(instance.base, LOGINS["candidate"])
    await _schemathesis_run(
        instance.base, token, tmp_path, "--max-time", "30", "--include-operation-id", "logout"
    )
