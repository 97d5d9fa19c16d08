"""The chaos harness's reports: the JSON document and a Markdown page beside it."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import orjson


def machine() -> dict[str, Any]:
    """What the figures were measured on (2 shared cores make every timing noisy)."""
    versions = {}
    for name, cmd in {
        "uptime": ["uptime"],
        "redis": ["redis-server", "--version"],
        "mariadb": ["mariadbd", "--version"],
    }.items():
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
            versions[name] = out.stdout.strip()[:120]
        except (OSError, subprocess.TimeoutExpired):
            versions[name] = "?"
    return {
        "cpus": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "kernel": platform.release(),
        **versions,
    }


def write_reports(summary: dict[str, Any], json_path: Path) -> Path:
    """Write ``json_path`` and the Markdown report beside it (same name, ``.md``)."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    md = json_path.with_suffix(".md")
    md.write_text(markdown(summary))
    return md


def markdown(s: dict[str, Any]) -> str:
    lines = [
        "# volreg chaos report",
        "",
        f"**{'PASS' if s['passed'] else 'FAIL'}**: {s['acked']} acknowledged saves; "
        f"before any repair **{s['lost_before_repair']} lost** (MySQL as the consumers left "
        f"it); after `reconcile --full` **{s['lost']} lost**, **{s['mismatched']} "
        f"mismatched** (Redis vs MySQL); **{s['content_mismatched']} forms with content "
        f"from the wrong attempt**; {s['dead_lettered']} dead letters; "
        f"{s['restore_failed']} forms not restored after the Redis wipe; "
        f"{s['order_errors']} version-order errors; {s['not_injected']} rounds whose fault "
        "was not proven.",
        "",
        f"Command: `{s['command']}`. Form broker: {s['config'].get('broker', 'rabbitmq')}. "
        f"{len(s['rounds'])} rounds of at least "
        f"{s['config']['duration_s']} s load from {s['config']['clients']} concurrent clients "
        f"over {s['forms']} forms; {s['attempted']} saves attempted, {s['failed_requests']} "
        f"refused or cut off (never acknowledged, so allowed to fail). Run took "
        f"{s['seconds']} s, finished {s['finished_at']}.",
        "",
        "| round | fault | proven | recovered in s | load after s | acked (after recovery) "
        "| checked | drain s | lost before repair | content | dead letters | repaired Redis / "
        "MySQL | lost | mismatched |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in s["rounds"]:
        lines.append(
            f"| {r['round']} | {r['fault']} ({r['target']}) | {'yes' if r['injected'] else 'NO'} "
            f"| {r['recovered_s']} | {r['load_after_recovery_s']} | {r['acked']} "
            f"({r['acked_after_recovery']}) | {r['checked']} | {r['drain_s']} "
            f"| {r['lost_before_repair']} | {r['content_mismatched']} | {r['dead_lettered']} "
            f"| {r['repaired_redis']} / {r['repaired_mysql']} | {r['lost']} "
            f"| {r['mismatched']} |"
        )
    lines += [
        "",
        "*proven*: the process was running and was SIGKILLed and runs again under a new PID, or "
        "the proxy held or delayed traffic while saves were in flight; then every API was "
        "ready, every consumer subscribed and a save acknowledged (*recovered in*, from the "
        "restart or the end of the partition or slowness). *checked*: forms whose newest "
        "save was exposed to the fault and not superseded: acknowledged just before the fault "
        "or just after recovery (then not saved again that round), or, in the Redis round, "
        "left untouched from before the wipe until they had come back from MySQL. *lost "
        "before repair*: acknowledged saves MySQL lacked once the queues were drained, before "
        "the reconciler could copy them from Redis. *content*: forms whose stored content "
        "came from an attempt older than the newest acknowledged save (or not sent at all).",
        "",
    ]
    proofs = [
        f"- round {r['round']} ({r['fault']}): "
        + ", ".join(f"{k} {v}" for k, v in r["proof"].items())
        for r in s["rounds"]
    ]
    lines += ["Proof of each fault:", "", *proofs, ""]
    if s["problems"]:
        lines += ["Problems:", "", *(f"- {p}" for p in s["problems"]), ""]
    reasons = [
        f"- round {r['round']}: {reason}"
        for r in s["rounds"]
        for reason in r["dead_letter_reasons"]
    ]
    if reasons:
        lines += ["Dead letters (reasons):", "", *reasons, ""]
    if s["config"].get("sabotage"):
        damage = [f"round {r['round']}: {r['sabotaged']}" for r in s["rounds"] if r["sabotaged"]]
        lines += [f"Sabotage (self-test, the run must fail): {'; '.join(damage)}", ""]
    lines += [
        "Refusals by kind: "
        + (", ".join(f"{k}: {v}" for k, v in sorted(s["failures"].items())) or "none"),
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in s["machine"].items()),
        "",
    ]
    return "\n".join(lines)
