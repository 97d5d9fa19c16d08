"""Running ``volreg chaos`` from a test: the command in a process of its own, its JSON report,
and the counts every passing run must show at zero."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

COUNTS = ("lost", "lost_before_repair", "mismatched", "content_mismatched", "dead_lettered")


def run_chaos(tmp_path: Path, *args: str, timeout: float) -> tuple[int, dict[str, Any], str]:
    """Exit code, JSON report and the end of stderr of one ``volreg chaos`` run."""
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


def assert_passed(report: dict[str, Any], faults: tuple[str, ...], killed: tuple[str, ...]) -> None:
    """Every count zero, every round (one per fault, in order) proven and recovered; the
    processes of ``killed`` faults run again under a new PID."""
    rounds = report["rounds"]
    assert [r["fault"] for r in rounds] == list(faults)
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
        if r["fault"] in killed:
            assert r["proof"]["pid_after"] != r["proof"]["pid_before"], r
