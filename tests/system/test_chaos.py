"""The chaos harness, short: five rounds, one of each fault kind, on private servers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.chaos import FAULTS


@pytest.mark.timeout(300)
def test_no_acknowledged_save_is_lost_through_every_kind_of_crash(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.main.cli", "chaos", "--rounds", "5", "--duration", "5",
         "--clients", "16", "--forms", "200", "--json", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        _, err = proc.communicate(timeout=270)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # it stops its private servers on SIGTERM
        _, err = proc.communicate(timeout=60)
        raise AssertionError(f"chaos run timed out: {err[-3000:]}") from None
    assert out.exists(), err[-3000:]
    report = json.loads(out.read_text())
    assert [r["fault"] for r in report["rounds"]] == list(FAULTS)
    assert report["acked"] > 0 and all(r["acked"] > 0 for r in report["rounds"]), report
    assert report["lost"] == 0 and report["mismatched"] == 0, report
    assert report["phantom"] == 0 and report["order_errors"] == 0, report
    assert proc.returncode == 0, err[-3000:]
    assert (tmp_path / "chaos.md").read_text().startswith("# volreg chaos report")
