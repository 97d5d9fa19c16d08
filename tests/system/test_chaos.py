"""The chaos harness, short: one round of each fault kind on private servers, with a verdict
that must pass; and the same harness run with damage done behind the service's back (rows
deleted, confirmed messages dropped, content replaced), which must make it fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.chaos_faults import DISK_FAULTS, PROCESS_FAULTS, faults_for
from tests.system.chaos_run import assert_passed, run_chaos

# The disk-full round is left to long runs (`volreg chaos --faults disk-full`): in two of
# the last runs its consumers were not all subscribed again within 90 s after the broker's
# full disk crashed a quorum queue, an open problem; a CI verdict must not be a coin toss.
CI_FAULTS = tuple(f for f in faults_for("rabbitmq") if f not in DISK_FAULTS)


@pytest.mark.timeout(360)
def test_no_acknowledged_save_is_lost_through_every_kind_of_fault(tmp_path: Path) -> None:
    code, report, err = run_chaos(
        tmp_path,
        *("--rounds", str(len(CI_FAULTS)), "--faults", ",".join(CI_FAULTS)),
        *("--duration", "6", "--clients", "16", "--forms", "400"),
        timeout=330,
    )
    assert_passed(report, CI_FAULTS, PROCESS_FAULTS)
    rounds = report["rounds"]
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
    code, report, _ = run_chaos(
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
