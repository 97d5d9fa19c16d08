"""RocketMQ only (``make test-rocketmq``): the chaos harness on a private RocketMQ carrying
the saves (``volreg chaos --broker rocketmq``). Its proxy's JVM (the broker inside) and its
name server are killed with SIGKILL during saves, and so are an API process and a consumer,
and the APIs' link to the proxy is cut: nothing acknowledged may be missing from MySQL.

The other faults (Redis, MariaDB, the slow links) do not depend on the broker and run in
``tests/system/test_chaos.py`` on RabbitMQ; ``volreg chaos --broker rocketmq`` without
``--faults`` runs them on RocketMQ too."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from loadtest.chaos_faults import PROCESS_FAULTS
from tests.system.chaos_run import assert_passed, run_chaos

pytestmark = pytest.mark.skipif(
    os.environ.get("VOLREG_TEST_BROKER") != "rocketmq", reason="RocketMQ only: make test-rocketmq"
)

FAULTS = ("rocketmq", "namesrv", "service", "consumer", "partition")


# Two JVM starts (~40 s each on a busy 2-core machine), a restart of each, and a consumer
# round whose unacked messages come back only after their 30 s invisible duration.
@pytest.mark.timeout(600)
def test_no_acknowledged_save_is_lost_when_rocketmq_and_the_rest_are_killed(
    tmp_path: Path,
) -> None:
    code, report, err = run_chaos(
        tmp_path,
        *("--broker", "rocketmq", "--rounds", str(len(FAULTS)), "--faults", ",".join(FAULTS)),
        *("--duration", "6", "--clients", "16", "--forms", "400"),
        timeout=570,
    )
    assert report["config"]["broker"] == "rocketmq"
    assert_passed(report, FAULTS, PROCESS_FAULTS)
    broker = report["rounds"][0]
    # Saves were in flight when the broker died, and were refused while it was down.
    assert broker["proof"]["in_flight_at_fault"] > 0, broker
    assert broker["failures"].get("503 broker_unavailable", 0) > 0, broker
    assert code == 0, err
