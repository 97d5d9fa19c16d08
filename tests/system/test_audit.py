"""`make audit` (scripts/audit.py, also the last step of `make lint`) never passes without
auditing: a dependency its vulnerability service does not know, or a service it cannot
reach, fails with one line saying the dependencies were NOT audited (pip-audit itself
reports both as "No known vulnerabilities found" and exits 0 on the first);
VOLREG_AUDIT=skip skips it and says so."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support import ROOT

SCRIPT = ROOT / "scripts" / "audit.py"
# A package no index has: whatever the network, it cannot be audited.
_UNKNOWN = "volreg-audit-probe-never-published==0.0.1 --hash=sha256:" + "0" * 64 + "\n"


def _audit(lock: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "VOLREG_AUDIT"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(lock)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_dependency_that_could_not_be_audited_fails(tmp_path: Path) -> None:
    lock = tmp_path / "unknown.lock"
    lock.write_text(_UNKNOWN)
    done = _audit(lock)
    assert done.returncode == 1, done
    [line] = done.stderr.strip().splitlines()
    assert "were NOT audited" in line and "VOLREG_AUDIT=skip" in line, line


def test_an_unreachable_service_fails(tmp_path: Path) -> None:
    # Every HTTPS request of pip-audit goes to a closed loopback port.
    done = _audit(ROOT / "requirements.lock", HTTPS_PROXY="http://127.0.0.1:9")
    assert done.returncode == 1, done
    [line] = done.stderr.strip().splitlines()
    assert "were NOT audited" in line and "VOLREG_AUDIT=skip" in line, line


def test_skipping_is_explicit_and_loud(tmp_path: Path) -> None:
    lock = tmp_path / "unknown.lock"
    lock.write_text(_UNKNOWN)
    done = _audit(lock, VOLREG_AUDIT="skip")
    assert done.returncode == 0
    assert "SKIPPED (VOLREG_AUDIT=skip)" in done.stderr and "NOT audited" in done.stderr
    assert _audit(lock, VOLREG_AUDIT="yes").returncode == 1  # only "skip" skips


@pytest.mark.parametrize(
    ("dependencies", "code"),
    [
        ([{"name": "a", "version": "1", "vulns": []}], 0),
        ([{"name": "a", "version": "1", "vulns": [{"id": "PYSEC-1", "fix_versions": []}]}], 1),
        ([{"name": "a", "version": "1", "vulns": []}, {"name": "b", "skip_reason": "x"}], 1),
        ([], 1),
    ],
)
def test_the_verdict_on_a_report(dependencies: list[dict[str, object]], code: int) -> None:
    assert _script().verdict("x.lock", dependencies) == code
