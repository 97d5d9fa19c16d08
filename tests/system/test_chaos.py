"""The chaos harness, short: one round of each fault kind on private servers, with a verdict
that must pass; and the same harness run with damage done behind the service's back (rows
deleted, confirmed messages dropped, content replaced), which must make it fail."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtest.chaos_faults import DISK_FAULTS, FAULTS, PROCESS_FAULTS

# The disk-full round is left to long runs (`volreg chaos --faults disk-full`): in two of
# the last runs its consumers were not all subscribed again within 90 s after the broker's
# full disk crashed a quorum queue, an open problem; a CI verdict must not be a coin toss.
CI_FAULTS = tuple(f for f in FAULTS if f not in DISK_FAULTS)

COUNTS = ("lost", "lost_before_repair", "mismatched", "content_mismatched", "dead_lettered")


def _chaos(tmp_path: Path, *args: str, timeout: float) -> tuple[int, dict[str, Any], str]:
    out = tmp_path / "chaos.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.main.cli", "chaos", "--json", str(out), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # it stops its private servers on SIGTERM
        _, err = proc.communicate(timeout=60)
        raise AssertionError(f"chaos run timed out: {err[-3000:]}") from None
    assert out.exists(), err[-3000:]
    assert (tmp_path / "chaos.md").read_text().startswith("# volreg chaos report")
    return proc.returncode, json.loads(out.read_text()), err[-3000:]


@pytest.mark.timeout(360)
def test_no_acknowledged_save_is_lost_through_every_kind_of_fault(tmp_path: Path) -> None:
    code, report, err = _chaos(
        tmp_path,
        *("--rounds", str(len(CI_FAULTS)), "--faults", ",".join(CI_FAULTS)),
        *("--duration", "6", "--clients", "16", "--forms", "400"),
        timeout=330,
    )
    rounds = report["rounds"]
    assert [r["fault"] for r in rounds] == list(CI_FAULTS)
    assert report["acked"] > 0
    for name in COUNTS:
        assert report[name] == 0, (name, report["problems"], rounds)
    assert report["order_errors"] == 0 and report["restore_failed"] == 0, report
    assert report["problems"] == [] and report["not_injected"] == 0, report["problems"]
    for r in rounds:
        # Each round proved its fault and saw the system work again after it.
        assert r["injected"] and r["passed"], r
        assert r["recovered_s"] is not None and r["load_after_recovery_s"] >= 3.5, r
        assert r["acked_after_recovery"] > 0 and r["checked"] > 0, r
        for name in (*COUNTS, "restore_failed", "order_errors"):
            assert r[name] == 0, (name, r)
        if r["fault"] in PROCESS_FAULTS:
            assert r["proof"]["pid_after"] != r["proof"]["pid_before"], r
    [wipe] = [r for r in rounds if r["fault"] == "redis"]
    assert wipe["proof"]["wiped_forms"] == wipe["checked"] > 0, wipe
    assert code == 0, err


@pytest.mark.timeout(240)
def test_the_harness_fails_when_acknowledged_saves_are_lost_behind_its_back(
    tmp_path: Path,
) -> None:
    """Real servers, real consumers; the damage is done with the servers' own tools (a purge
    of the form queues after saves were confirmed, a DELETE and an UPDATE as MariaDB's root),
    where no repair can hide it from the verdict before repair."""
    code, report, _ = _chaos(
        tmp_path,
        *("--rounds", "1", "--faults", "consumer", "--duration", "5", "--forms", "400"),
        *("--sabotage", "delete-row,drop-message,stale-content"),
        timeout=210,
    )
    [r] = report["rounds"]
    done = r["sabotaged"]
    assert done["delete-row"] > 0 and done["drop-message"] > 0 and done["stale-content"] > 0, r
    assert code == 1
    assert report["passed"] is False and r["passed"] is False
    # Each deleted row and each dropped message took at least one acknowledged save.
    assert report["lost_before_repair"] >= 2 * 3, r
    assert report["content_mismatched"] >= done["stale-content"], r
    # The reconciler copies the lost saves back from Redis: only the verdict before repair
    # sees them. The replaced content keeps its version, so it stays a mismatch.
    assert r["repaired_mysql"] >= 2 * 3 and report["lost"] == 0, r
    assert report["mismatched"] >= done["stale-content"], r
