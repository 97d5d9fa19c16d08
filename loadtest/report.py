"""The report: ratios and targets from the per-scenario figures, as JSON and Markdown."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson


def _rps(scenarios: dict[str, Any], name: str) -> float | None:
    s = scenarios.get(name)
    return float(s["rps"]) if s and s["rps"] > 0 else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a / b, 3)


def ratios(scenarios: dict[str, Any]) -> dict[str, float | None]:
    """``query_over_ceiling`` is the weaker of the exam and form reads."""
    ceiling = _rps(scenarios, "ceiling")
    save = _rps(scenarios, "save")
    reads = [r for r in (_rps(scenarios, "exam"), _rps(scenarios, "form")) if r is not None]
    return {
        "save_over_ceiling": _ratio(save, ceiling),
        "save_over_naive": _ratio(save, _rps(scenarios, "naive")),
        "query_over_ceiling": _ratio(min(reads) if reads else None, ceiling),
        "exam_over_ceiling": _ratio(_rps(scenarios, "exam"), ceiling),
        "form_over_ceiling": _ratio(_rps(scenarios, "form"), ceiling),
        "mixed_over_ceiling": _ratio(_rps(scenarios, "mixed"), ceiling),
    }


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    value: float | None
    limit: float
    at_least: bool  # value must be >= limit (else <=)

    def to_json(self) -> dict[str, Any]:
        met = None
        if self.value is not None:
            met = self.value >= self.limit if self.at_least else self.value <= self.limit
        op = ">=" if self.at_least else "<="
        return {
            "name": self.name,
            "value": self.value,
            "target": f"{op} {self.limit:g}",
            "met": met,
        }


def _get(scenarios: dict[str, Any], name: str, *path: str) -> float | None:
    value: Any = scenarios.get(name)
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return None if value is None else float(value)


def targets(scenarios: dict[str, Any], r: dict[str, float | None]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value (None when not measured)."""
    s = scenarios
    rows = [
        Target("save / ceiling", r["save_over_ceiling"], 0.25, True),
        Target("save / naive", r["save_over_naive"], 1.5, True),
        Target("save p99 ms", _get(s, "save", "latency_ms", "p99"), 100, False),
        Target("save errors", _get(s, "save", "errors", "total"), 0, False),
        Target("save: API CPU ms", _get(s, "save", "cpu_ms_per_request", "api"), 0.5, False),
        Target(
            "save: chain CPU ms / naive's",
            _ratio(
                _get(s, "save", "cpu_ms_per_request", "chain"),
                _get(s, "naive", "cpu_ms_per_request", "chain"),
            ),
            1.0,
            False,
        ),
        Target(
            "save: MySQL commits/save", _get(s, "save", "mysql_commits_per_request"), 0.02, False
        ),
        Target("exam / ceiling", r["exam_over_ceiling"], 0.6, True),
        Target("form / ceiling", r["form_over_ceiling"], 0.6, True),
        Target("form / exam", _ratio(_rps(s, "form"), _rps(s, "exam")), 0.6, True),
        Target("exam p99 ms", _get(s, "exam", "latency_ms", "p99"), 50, False),
        Target("form p99 ms", _get(s, "form", "latency_ms", "p99"), 50, False),
        Target("save: queue empty after load, s", _get(s, "save", "queue", "drain_s"), 5, False),
        Target("mixed: queue empty after load, s", _get(s, "mixed", "queue", "drain_s"), 5, False),
    ]
    return [t.to_json() for t in rows]


def complete(report: dict[str, Any]) -> dict[str, Any]:
    r = ratios(report["scenarios"])
    return {**report, "ratios": r, "targets": targets(report["scenarios"], r)}


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def scenario_table(report: dict[str, Any]) -> list[str]:
    lines = [
        "| scenario | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | load avg (1 min) "
        "| CPU busy | wrk CPU | API CPU ms/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in report["scenarios"].items():
        lat = s["latency_ms"]
        lines.append(
            f"| {name} | {fmt(s['rps'], 0)} | {fmt(lat['p50'], 2)} | {fmt(lat['p90'], 2)} "
            f"| {fmt(lat['p99'], 2)} | {fmt(lat['max'], 1)} | {s['errors']['total']} "
            f"| {s['loadavg_before'][0]:.2f} | {s['machine_cpu_busy']:.0%} "
            f"| {s['generator_cpu_share']:.0%} | {fmt(s.get('api_cpu_ms_per_request'), 3)} |"
        )
    return lines


_ROLES = ("api", "consumer", "redis", "broker", "mysql", "generator", "chain")


def cpu_table(report: dict[str, Any]) -> list[str]:
    """CPU ms per request of each process of the chain (from /proc), the whole machine's
    (every process, other users' too), saves per broker message and MySQL commits."""
    lines = [
        "| scenario | " + " | ".join(f"{r} ms" for r in _ROLES) + " | machine ms "
        "| saves/message | batch wait ms | confirm ms | MySQL commits/req "
        "| InnoDB fsyncs/req (server-wide) |",
        "|---|" + "---:|" * (len(_ROLES) + 6),
    ]
    for name, s in report["scenarios"].items():
        cpu = s.get("cpu_ms_per_request") or {}
        group = s.get("group_commit") or {}
        wide = s.get("mysql_server_wide_per_request") or {}
        lines.append(
            f"| {name} | "
            + " | ".join(fmt(cpu.get(r), 3) for r in _ROLES)
            + f" | {fmt(s.get('machine_cpu_ms_per_request'), 3)} "
            f"| {fmt(group.get('records_per_message'), 2)} "
            f"| {fmt(group.get('mean_wait_ms'), 2)} "
            f"| {fmt(group.get('mean_confirm_ms'), 2)} "
            f"| {fmt(s.get('mysql_commits_per_request'), 4)} "
            f"| {fmt(wide.get('Innodb_data_fsyncs'), 3)} |"
        )
    return lines


def open_loop_table(report: dict[str, Any]) -> list[str]:
    """Saves at fixed arrival rates: latency from the intended send time (queueing shows)."""
    lines = [
        "| offered saves/s | achieved | p50 ms | p90 ms | p99 ms | max ms | errors "
        "| load avg | api ms | chain ms | saves/message | MySQL commits/save |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in report.get("open_loop") or []:
        lat = run["latency_ms_from_intended"]
        cpu = run.get("cpu_ms_per_request") or {}
        lines.append(
            f"| {fmt(run['offered_rps'], 0)} | {fmt(run['achieved_rps'], 0)} "
            f"| {fmt(lat['p50'], 2)} | {fmt(lat['p90'], 2)} | {fmt(lat['p99'], 2)} "
            f"| {fmt(lat['max'], 1)} | {run['errors']['total']} "
            f"| {run['loadavg_before'][0]:.2f} | {fmt(cpu.get('api'), 3)} "
            f"| {fmt(cpu.get('chain'), 3)} "
            f"| {fmt((run.get('group_commit') or {}).get('records_per_message'), 2)} "
            f"| {fmt(run.get('mysql_commits_per_request'), 4)} |"
        )
    return lines


def ratio_line(report: dict[str, Any]) -> str:
    r = report["ratios"]
    return (
        f"save/ceiling {fmt(r['save_over_ceiling'], 3)}, "
        f"save/naive {fmt(r['save_over_naive'], 2)}, "
        f"query/ceiling {fmt(r['query_over_ceiling'], 3)} "
        f"(exam {fmt(r['exam_over_ceiling'], 3)}, form {fmt(r['form_over_ceiling'], 3)})"
    )


def markdown(report: dict[str, Any], command: str, plots: list[Path]) -> str:
    meta = report["meta"]
    m = meta["machine"]
    out = [
        f"# Load test {meta['started_at']}",
        "",
        f"`{command}`",
        "",
        f"Target {meta['url']}; {meta['duration_s']} s per scenario in {meta['slice_s']} s wrk "
        f"runs; {meta['connections']} connections, {meta['threads']} wrk thread(s); "
        f"{meta['candidates']} candidates logged in beforehand; saves per candidate per "
        f"minute limited to {meta.get('save_limit_per_candidate_per_min') or 'no limit'}. "
        f"Machine: {m['cpus']} CPUs "
        f"({m['cpu_model']}), shared by the load generator and every server.",
        "",
        *scenario_table(report),
        "",
        "CPU per request of each process (user + system, /proc; `chain` is their sum, counted "
        "until MySQL caught up), saves per broker message, MySQL commits per request:",
        "",
        *cpu_table(report),
        "",
        "MariaDB: "
        + ", ".join(f"{k}={v}" for k, v in sorted((meta.get("mysql") or {}).items()))
        + ".",
        "",
        *(
            [
                "Open loop: saves sent at a fixed rate whatever the answers; latency counted "
                "from each request's intended send time.",
                "",
                *open_loop_table(report),
                "",
            ]
            if report.get("open_loop")
            else []
        ),
        f"Ratios: {ratio_line(report)}.",
        "",
        "| target | measured | wanted | met |",
        "|---|---:|---:|---|",
    ]
    for t in report["targets"]:
        met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
        out.append(f"| {t['name']} | {fmt(t['value'], 3)} | {t['target']} | {met} |")
    queues = {n: s["queue"] for n, s in report["scenarios"].items() if s.get("queue")}
    if queues:
        out += ["", "| scenario | max queue depth | queue empty after load s | MySQL caught up s |"]
        out.append("|---|---:|---:|---:|")
        for name, q in queues.items():
            out.append(
                f"| {name} | {fmt(q['max_depth'])} | {fmt(q['drain_s'], 2)} "
                f"| {fmt(q['mysql_caught_up_s'], 2)} |"
            )
    out += ["", *(f"![{p.stem}]({p.name})" for p in plots), ""]
    return "\n".join(out)
