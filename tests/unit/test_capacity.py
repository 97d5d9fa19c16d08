"""The capacity arithmetic from a load-test report (pure logic)."""

from __future__ import annotations

from typing import Any

from loadtest.capacity import Node, plan


def _scenario(**cpu: float) -> dict[str, Any]:
    return {"cpu_ms_per_request": cpu, "mysql_commits_per_request": cpu.pop("commits", None)}


def test_node_counts_follow_the_cpu_per_request() -> None:
    report = {
        "scenarios": {
            "exam": _scenario(api=0.1, redis=0.0),
            "form": _scenario(api=0.1, redis=0.01),
            "save": _scenario(api=0.5, consumer=0.1, redis=0.04, broker=0.2, mysql=0.03),
            "naive": _scenario(api=0.45, mysql=0.2, commits=1.0),
        }
    }
    report["scenarios"]["save"]["mysql_commits_per_request"] = 0.02
    text = "\n".join(plan(report, saves=20_000, queries=40_000, node=Node(8, 0.5)))
    # 20,000 x 0.5 ms = 10 cores of saves + 40,000 x 0.1 ms = 4 of queries, 4 per node.
    assert "| API nodes (both) | 14.0 cores | | **4** |" in text
    # 20,000 x 0.2 ms x 3 replicas = 12 cores: 3 nodes, also the quorum minimum.
    assert "= 12.0 cores | / 4.0 per node | **3** (CPU: 3" in text
    assert "20,000 x 0.0200 = 400 commits/s" in text
    # The naive design: one durable commit per save, 5,000 per primary.
    assert "| **4** primaries (sharded writes) |" in text
