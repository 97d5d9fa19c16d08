"""What the save path pays for hot-item events, the save history and the progress triggers:
the `save` scenario with everything on and with each of them off, one right after the other
on the same private servers, in rounds whose order rotates (so a machine that gets busier
during the session does not favour one variant).

    python -m loadtest.private -- python -m loadtest.variants --duration 20 --rounds 2

Each run is ``volreg loadtest --spawn 1 --scenarios save`` with its own API and consumer:
events off is ``VOLREG_HOT_FLUSH_S=0``, history off ``VOLREG_BENCH_NO_HISTORY=1``, triggers
off drops the two progress triggers on ``forms`` for the run and creates them again after
it (which is why it runs only inside ``loadtest.private``: never on a database anybody uses).
The report folder gets every run's report, ``variants.json`` and ``variants.md``: CPU per
save of each process, the consumer's upsert and history time per save, and each variant's
ratio to the all-on run of its own round.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncmy
import orjson

from loadtest import machine
from service.core.settings import Settings
from service.storage.mysql_db import pool_kwargs

_TRIGGERS = ("forms_progress_insert", "forms_progress_update")
_ROLES = ("api", "consumer", "redis", "broker", "mysql", "generator", "chain")
_RUN_LIMIT_S = 300.0  # one loadtest run: logins, the load, MySQL catching up


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    env: dict[str, str] = field(default_factory=dict)
    triggers: bool = True


VARIANTS = (
    Variant("all on"),
    Variant("events off", {"VOLREG_HOT_FLUSH_S": "0"}),
    Variant("history off", {"VOLREG_BENCH_NO_HISTORY": "1"}),
    Variant("triggers off", triggers=False),
    Variant("all off", {"VOLREG_HOT_FLUSH_S": "0", "VOLREG_BENCH_NO_HISTORY": "1"}, False),
)


@contextlib.asynccontextmanager
async def _without_triggers(settings: Settings) -> AsyncIterator[None]:
    """Drop the progress triggers on ``forms`` and create them again afterwards."""
    conn = await asyncmy.connect(**pool_kwargs(settings))
    try:
        statements = []
        async with conn.cursor() as cur:
            for name in _TRIGGERS:
                await cur.execute(f"SHOW CREATE TRIGGER {name}")
                statements.append((await cur.fetchone())[2])
            for name in _TRIGGERS:
                await cur.execute(f"DROP TRIGGER {name}")
        try:
            yield
        finally:
            async with conn.cursor() as cur:
                for statement in statements:
                    await cur.execute(statement)
    finally:
        conn.close()


async def _loadtest(variant: Variant, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    command = [
        *(sys.executable, "-m", "service.main.cli", "loadtest", "--spawn", "1"),
        *("--scenarios", "save", "--duration", str(args.duration)),
        *("--candidates", str(args.candidates), "--candidates-csv", args.candidates_csv),
        *("--out", str(out), "--json", str(out / "loadtest.json")),
    ]
    env = dict(os.environ, **variant.env)
    proc = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        async with asyncio.timeout(_RUN_LIMIT_S):
            code = await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"{variant.name}: the load test ran past {_RUN_LIMIT_S:g} s") from None
    if code != 0:
        raise RuntimeError(f"{variant.name}: the load test failed ({code}); see {out}")
    report: dict[str, Any] = orjson.loads((out / "loadtest.json").read_bytes())
    return dict(report["scenarios"]["save"])


def _row(variant: str, round_: int, save: dict[str, Any]) -> dict[str, Any]:
    cpu = save.get("cpu_ms_per_request", {})
    return {
        "variant": variant,
        "round": round_,
        "rps": save["rps"],
        "p99_ms": save["latency_ms"].get("p99"),
        "errors": save["errors"]["total"],
        "cpu_ms_per_save": {role: cpu.get(role) for role in _ROLES},
        "upsert_ms_per_save": save.get("consumer_upsert_ms_per_request"),
        "history_ms_per_save": save.get("consumer_history_ms_per_request"),
        "mysql_commits_per_save": save.get("mysql_commits_per_request"),
        "loadavg": [save["loadavg_before"][0], save["loadavg_after"][0]],
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _ratios(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run against the all-on run of its round: all on / variant, so above 1 is what
    the switched-off part costs."""
    base = {r["round"]: r for r in rows if r["variant"] == VARIANTS[0].name}
    out = []
    for r in rows:
        b = base.get(r["round"])
        if b is None or r is b:
            continue
        out.append(
            {
                "variant": r["variant"],
                "round": r["round"],
                "cpu": {
                    role: _ratio(b["cpu_ms_per_save"][role], r["cpu_ms_per_save"][role])
                    for role in _ROLES
                },
                "upsert": _ratio(b["upsert_ms_per_save"], r["upsert_ms_per_save"]),
                "rps": _ratio(r["rps"], b["rps"]),
            }
        )
    return out


def _markdown(rows: Sequence[dict[str, Any]], ratios: Sequence[dict[str, Any]]) -> str:
    def f(v: Any) -> str:
        return "-" if v is None else f"{v:,}" if isinstance(v, int) else f"{v:,.3f}"

    lines = [
        "| round | variant | save req/s | p99 ms | API | consumer | Redis | broker | MariaDB "
        "| load gen | chain | upsert ms | history ms | load avg |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        c = r["cpu_ms_per_save"]
        lines.append(
            f"| {r['round']} | {r['variant']} | {r['rps']:,.0f} | {f(r['p99_ms'])} | "
            + " | ".join(f(c[role]) for role in _ROLES)
            + f" | {f(r['upsert_ms_per_save'])} | {f(r['history_ms_per_save'])} | "
            f"{r['loadavg'][0]:.1f} → {r['loadavg'][1]:.1f} |"
        )
    lines += [
        "",
        "All on / variant in the same round (above 1: what the part switched off costs):",
        "",
        "| round | variant | API CPU | consumer CPU | MariaDB CPU | chain CPU | upsert time "
        "| req/s (variant / all on) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for q in ratios:
        c = q["cpu"]
        lines.append(
            f"| {q['round']} | {q['variant']} | {f(c['api'])} | {f(c['consumer'])} | "
            f"{f(c['mysql'])} | {f(c['chain'])} | {f(q['upsert'])} | {f(q['rps'])} |"
        )
    return "\n".join(lines) + "\n"


async def _run(args: argparse.Namespace) -> int:
    settings = Settings.from_env(os.environ)
    out: Path = args.out
    rows: list[dict[str, Any]] = []
    for round_ in range(1, args.rounds + 1):
        shift = (round_ - 1) % len(VARIANTS)
        for variant in VARIANTS[shift:] + VARIANTS[:shift]:
            print(
                f"round {round_}: {variant.name}; load average {machine.loadavg()[0]:.2f}",
                file=sys.stderr,
            )
            run_out = out / f"{round_}-{variant.name.replace(' ', '-')}"
            async with contextlib.AsyncExitStack() as stack:
                if not variant.triggers:
                    await stack.enter_async_context(_without_triggers(settings))
                save = await _loadtest(variant, args, run_out)
            rows.append(_row(variant.name, round_, save))
    ratios = _ratios(rows)
    (out / "variants.json").write_bytes(
        orjson.dumps({"runs": rows, "ratios": ratios}, option=orjson.OPT_INDENT_2)
    )
    text = _markdown(rows, ratios)
    (out / "variants.md").write_text(text)
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.variants", description=__doc__)
    p.add_argument("--duration", type=int, default=20, help="seconds of load per run (≤ 60)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of every variant (≤ 5)")
    p.add_argument("--candidates", type=int, default=300, help="candidates to log in")
    p.add_argument("--out", type=Path, default=Path("reports/variants"))
    args = p.parse_args(argv)
    csv = os.environ.get("BENCH_CANDIDATES_CSV")
    if not csv:
        p.error("run it inside `python -m loadtest.private --`: it drops triggers for a run")
    if not 1 <= args.duration <= 60 or not 1 <= args.rounds <= 5:
        p.error("--duration 1-60 and --rounds 1-5")
    args.candidates_csv = csv
    args.out.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_run(args))


if __name__ == "__main__":
    sys.exit(main())
