"""The token secret: weak or placeholder secrets stop the API at start-up; keys rotate."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
import urllib.request

import pytest

from loadtest.spawn import free_port
from schemas import urls
from service.core.settings import Settings
from service.core.tokens import Claims, TokenSigner
from tests.conftest import ClientFactory
from tests.support import DEMO_ID, settings_env

STRONG = "9f3c1e7a5b2d4f608e1a3c5b7d9f0e2a4c6b8d0f1e3a5c7b"
WEAK = {
    "unset": Settings().token_secret,
    "empty": "",
    "short": "0123456789abcdef",
    "k8s-placeholder": "REPLACE-ME-with-64-random-bytes",
    "k8s-dev-placeholder": "REPLACE-ME-dev-only",
    "repeated": "a" * 64,
}


def _env(settings: Settings, **variables: str) -> dict[str, str]:
    """The run's settings as variables, then ``variables`` (names without VOLREG_) over them:
    values the Settings object itself would refuse to hold."""
    env = settings_env(dataclasses.replace(settings, http_port=free_port()))
    return env | {f"VOLREG_{name.upper()}": value for name, value in variables.items()}


def _run(
    command: str, env: dict[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.main.cli", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("kind", sorted(WEAK))
def test_api_refuses_a_weak_secret(settings: Settings, kind: str) -> None:
    done = _run("serve", _env(settings, token_secret=WEAK[kind]))
    assert done.returncode == 2, done.stderr
    assert "VOLREG_TOKEN_SECRET" in done.stderr
    assert "Traceback" not in done.stderr


def test_reconciler_and_previous_secrets_are_checked_too(settings: Settings) -> None:
    done = _run("reconcile", _env(settings, token_previous_secrets="REPLACE-ME"))
    assert done.returncode == 2, done.stderr
    assert "VOLREG_TOKEN_PREVIOUS_SECRETS" in done.stderr


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"trusted_proxies": "10.0.0.0/33"}, "VOLREG_TRUSTED_PROXIES"),
        ({"argon2_memory_kib": str(4 * 1024 * 1024)}, "VOLREG_ARGON2_MEMORY_KIB"),
    ],
)
def test_api_refuses_settings_that_would_weaken_it(
    settings: Settings, overrides: dict[str, str], variable: str
) -> None:
    done = _run("serve", _env(settings, **overrides))
    assert done.returncode == 2 and variable in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_dev_mode_starts_with_a_weak_secret_and_says_so(settings: Settings) -> None:
    env = _env(settings, token_secret="short", dev_mode="1")
    port = int(env["VOLREG_HTTP_PORT"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.main.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{urls.LIVE}", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "the dev-mode API never answered"
                time.sleep(0.2)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "development mode" in err and "VOLREG_TOKEN_SECRET" in err


async def test_rotation_keeps_old_tokens_valid_until_the_old_key_is_dropped(
    make_client: ClientFactory, settings: Settings
) -> None:
    old = settings.token_secret
    token = TokenSigner(old).issue(Claims(DEMO_ID, "candidate", int(time.time()) + 600))
    headers = {"Authorization": f"Bearer {token}"}
    url = urls.EXAM.format(candidate_id=DEMO_ID)

    rotated = await make_client(token_secret=STRONG, token_previous_secrets=old)
    assert (await rotated.get(url, headers=headers)).status == 200
    # New tokens are signed with the new key (another key id) and verify there too.
    fresh = TokenSigner(STRONG).issue(Claims(DEMO_ID, "candidate", int(time.time()) + 600))
    assert fresh.split(".")[1] != token.split(".")[1]
    assert (await rotated.get(url, headers={"Authorization": f"Bearer {fresh}"})).status == 200

    dropped = await make_client(token_secret=STRONG)
    resp = await dropped.get(url, headers=headers)
    assert resp.status == 401
