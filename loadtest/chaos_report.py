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
    ok = s["lost"] == s["mismatched"] == s["phantom"] == s["order_errors"] == 0
    lines = [
        "# volreg chaos report",
        "",
        f"**{'PASS' if ok else 'FAIL'}**: {s['acked']} acknowledged saves, "
        f"**{s['lost']} lost**, **{s['mismatched']} mismatched** (Redis vs MySQL), "
        f"{s['phantom']} phantom copies, {s['order_errors']} version-order errors.",
        "",
        f"{len(s['rounds'])} rounds of {s['config']['duration_s']} s load from "
        f"{s['config']['clients']} concurrent clients over {s['forms']} forms; "
        f"{s['attempted']} saves attempted, {s['failed_requests']} refused or cut off "
        f"(never acknowledged, so allowed to fail). Run took {s['seconds']} s, finished "
        f"{s['finished_at']}.",
        "",
        "| round | fault (killed -9) | acked | failed | down s | back in s | drain s "
        "| reconcile runs | repaired Redis / MySQL | converged in s | since kill s | lost "
        "| mismatched |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in s["rounds"]:
        lines.append(
            f"| {r['round']} | {r['fault']} ({r['target']}) | {r['acked']} "
            f"| {r['failed_requests']} | {r['down_s']} | {r['restart_s']} | {r['drain_s']} "
            f"| {r['reconcile_runs']} | {r['repaired_redis']} / {r['repaired_mysql']} "
            f"| {r['converge_s']} | {r['since_kill_s']} | {r['lost']} | {r['mismatched']} |"
        )
    lines += [
        "",
        "*converged in*: from the end of the round's load until every acknowledged save was in "
        "MySQL and Redis and Redis equalled MySQL for every form (drain, `reconcile --once "
        "--full` in a new process, check). *since kill*: the same, counted from the kill (the "
        "rest of the round's load included). *back in*: restart until every API is ready.",
        "",
        "Refusals by kind: "
        + (", ".join(f"{k}: {v}" for k, v in sorted(s["failures"].items())) or "none"),
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in s["machine"].items()),
        "",
    ]
    return "\n".join(lines)
