"""Nodes a province needs, from the CPU each component spent per request in a load-test report.

``python -m loadtest.capacity REPORT.json [--saves 20000] [--queries 40000]`` prints the
arithmetic as Markdown (docs/capacity.md is made from it). CPU per request is what a run
measures best on a shared machine: it does not depend on how busy the other processes were.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

# RabbitMQ quorum queues keep three replicas: the leader's work is done again, in part, by
# two followers (counted in full here: an upper bound).
QUORUM_REPLICAS = 3
# What the original system reported for one MySQL primary (DESIGN.md): single-row durable
# commits per second before it saturates.
MYSQL_PRIMARY_COMMITS_S = 5000


@dataclass(frozen=True, slots=True)
class Node:
    cores: int = 8
    utilization: float = 0.6  # headroom for bursts and for a node lost

    @property
    def budget(self) -> float:
        """Cores one node gives at the target utilization."""
        return self.cores * self.utilization


def _count(cores: float, per_unit: float) -> int:
    """Units needed, at least one (a rounding error must not add a node)."""
    return max(1, math.ceil(cores / per_unit - 1e-9))


def _cpu(report: dict[str, Any], scenario: str, role: str) -> float:
    s = report["scenarios"].get(scenario) or {}
    value = (s.get("cpu_ms_per_request") or {}).get(role)
    if value is None:
        raise SystemExit(f"the report has no {role} CPU for the {scenario} scenario")
    return float(value)


def _row(what: str, rate: float, ms: float, per_node: float, unit: str) -> tuple[str, float]:
    cores = rate * ms / 1000
    count = _count(cores, per_node)
    return (
        f"| {what} | {rate:,.0f}/s x {ms:.3f} ms = {cores:,.1f} cores "
        f"| / {per_node:.1f} per {unit} | **{count}** |",
        cores,
    )


def plan(report: dict[str, Any], saves: float, queries: float, node: Node) -> list[str]:
    out = [
        f"Node: {node.cores} cores used to {node.utilization:.0%} = {node.budget:.1f} cores of "
        "work. Redis runs a shard on one core (same utilization).",
        "",
        "| component | work | capacity | count |",
        "|---|---|---|---:|",
    ]
    read_scenarios = [n for n in ("exam", "form") if n in report["scenarios"]]
    if not read_scenarios:
        raise SystemExit("the report needs the exam and/or form scenarios for queries")
    read_api = sum(_cpu(report, n, "api") for n in read_scenarios) / len(read_scenarios)
    read_redis = sum(_cpu(report, n, "redis") for n in read_scenarios) / len(read_scenarios)
    api_row, api_cores = _row("API, saves", saves, _cpu(report, "save", "api"), node.budget, "node")
    read_row, read_cores = _row("API, queries", queries, read_api, node.budget, "node")
    api_nodes = _count(api_cores + read_cores, node.budget)
    out += [
        api_row,
        read_row,
        f"| API nodes (both) | {api_cores + read_cores:,.1f} cores | | **{api_nodes}** |",
    ]
    out.append(_row("consumers", saves, _cpu(report, "save", "consumer"), node.budget, "node")[0])
    broker_ms = _cpu(report, "save", "broker") * QUORUM_REPLICAS
    broker_cores = saves * broker_ms / 1000
    brokers = _count(broker_cores, node.budget)
    out.append(
        f"| broker (x{QUORUM_REPLICAS} quorum replicas) | {saves:,.0f}/s x {broker_ms:.3f} ms "
        f"= {broker_cores:,.1f} cores | / {node.budget:.1f} per node "
        f"| **{max(QUORUM_REPLICAS, brokers)}** (CPU: {brokers}; a quorum needs "
        f"{QUORUM_REPLICAS}) |"
    )
    redis_ms_save = _cpu(report, "save", "redis")
    redis_cores = (saves * redis_ms_save + queries * read_redis) / 1000
    shards = _count(redis_cores, node.utilization)
    out.append(
        f"| Redis | {saves:,.0f} x {redis_ms_save:.3f} + {queries:,.0f} x {read_redis:.3f} ms "
        f"= {redis_cores:,.1f} cores | / {node.utilization:.1f} per shard | **{shards}** "
        "masters (+ a replica each) |"
    )
    commits = report["scenarios"]["save"].get("mysql_commits_per_request") or 0.0
    mysql_row, _ = _row(
        "MySQL (batched upserts)", saves, _cpu(report, "save", "mysql"), node.budget, "primary"
    )
    out += [
        mysql_row,
        f"| MySQL commits (batched) | {saves:,.0f} x {commits:.4f} = {saves * commits:,.0f} "
        f"commits/s | {MYSQL_PRIMARY_COMMITS_S:,}/s per primary | far below one primary |",
    ]
    if "naive" in report["scenarios"]:
        naive_commits = report["scenarios"]["naive"].get("mysql_commits_per_request") or 1.0
        need = saves * naive_commits
        out += [
            "",
            "The naive design (each save one durable MySQL commit):",
            "",
            "| component | work | capacity | count |",
            "|---|---|---|---:|",
            _row("API, saves", saves, _cpu(report, "naive", "api"), node.budget, "node")[0],
            _row("MySQL CPU", saves, _cpu(report, "naive", "mysql"), node.budget, "primary")[0],
            f"| MySQL commits | {saves:,.0f} x {naive_commits:.2f} = {need:,.0f} commits/s "
            f"| {MYSQL_PRIMARY_COMMITS_S:,}/s per primary "
            f"| **{_count(need, MYSQL_PRIMARY_COMMITS_S)}** primaries (sharded writes) |",
        ]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.capacity", description=__doc__)
    p.add_argument("report", type=Path, help="a `volreg loadtest --json` report")
    p.add_argument("--saves", type=float, default=20_000)
    p.add_argument("--queries", type=float, default=40_000)
    p.add_argument("--cores", type=int, default=8, help="cores per node")
    p.add_argument("--utilization", type=float, default=0.6)
    args = p.parse_args(argv)
    report = orjson.loads(args.report.read_bytes())
    print("\n".join(plan(report, args.saves, args.queries, Node(args.cores, args.utilization))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
