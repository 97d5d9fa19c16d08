"""The Markdown report of ``scripts/bench-brokers.sh``: one row per load test of the save
scenario (variant and round, from each folder's loadtest.json), then the send-to-ack table
(sends.json of loadtest/broker_sends.py).

    python -m loadtest.side_by_side OUT > OUT/report.md
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

from loadtest import broker_sends
from loadtest.report import fmt

_ABOUT = {
    "rabbitmq-batched": "RabbitMQ, group commit (the default)",
    "rabbitmq-plain": "RabbitMQ, one message per save",
    "rocketmq-plain": "RocketMQ, one message per save",
    "rocketmq-tx": "RocketMQ, transactional half message per save",
    "rocketmq-batched": "RocketMQ, group commit",
}


def rows(out: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(out.glob("*-[0-9]*/loadtest.json"), key=lambda p: p.stat().st_mtime):
        name, _, round_ = path.parent.name.rpartition("-")
        save = orjson.loads(path.read_bytes())["scenarios"]["save"]
        cpu = save.get("cpu_ms_per_request") or {}
        broker = cpu.get("broker")
        if broker is not None and "namesrv" in cpu:
            broker += cpu["namesrv"]
        found.append(
            {
                "variant": name,
                "round": int(round_),
                "saves": save["requests"],
                "rps": save["rps"],
                "p50_ms": save["latency_ms"].get("p50"),
                "p99_ms": save["latency_ms"].get("p99"),
                "errors": save["errors"]["total"],
                "broker_ms": broker,
                "rabbitmq_ms": cpu.get("rabbitmq"),
                "api_ms": save.get("api_cpu_ms_per_request"),
                "per_message": (save.get("group_commit") or {}).get("records_per_message"),
                "loadavg": save["loadavg_before"],
            }
        )
    return found


def markdown(out: Path) -> str:
    lines = [
        "| variant | round | saves | saves/s | p50 ms | p99 ms | errors "
        "| form broker CPU ms/save | RabbitMQ CPU ms/save | API CPU ms/save | saves/message "
        "| load avg before |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows(out):
        lines.append(
            f"| {_ABOUT.get(r['variant'], r['variant'])} | {r['round']} | {fmt(r['saves'])} "
            f"| {fmt(r['rps'])} | {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} "
            f"| {fmt(r['errors'])} | {fmt(r['broker_ms'], 2)} | {fmt(r['rabbitmq_ms'], 2)} "
            f"| {fmt(r['api_ms'], 2)} | {fmt(r['per_message'], 2)} "
            f"| {' '.join(str(x) for x in r['loadavg'])} |"
        )
    sends = out / "sends.json"
    if sends.exists():
        result = orjson.loads(sends.read_bytes())
        meta = result["meta"]
        lines += [
            "",
            f"Send-to-ack, one process ({meta['rounds']} rounds of {meta['count_per_round']} "
            f"sequential and {meta['count_per_round']} concurrent sends per variant; load "
            f"average {' '.join(map(str, meta['loadavg_before']))} before, "
            f"{' '.join(map(str, meta['loadavg_after']))} after):",
            "",
            *broker_sends.table(result),
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print(__doc__, file=sys.stderr)
        return 2
    sys.stdout.write(markdown(Path(argv[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
