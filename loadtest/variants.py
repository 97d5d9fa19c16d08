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
import random
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncmy
import orjson

from loadtest import bodies, machine, processes
from loadtest.private import BATCH
from schemas.records import FormRecord, Origin
from service.core import codec
from service.core.settings import Settings
from service.filing.mysql import FilingTables
from service.storage.mysql_db import pool_kwargs
from service.storage.mysql_parts import home_of, open_database

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


class _Triggers:
    """The progress triggers on ``forms``: dropped for a run and created again after it."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._statements: list[str] = []

    async def set(self, on: bool) -> None:
        async with self._conn.cursor() as cur:
            if not on and not self._statements:
                for name in _TRIGGERS:
                    await cur.execute(f"SHOW CREATE TRIGGER {name}")
                    self._statements.append((await cur.fetchone())[2])
                for name in _TRIGGERS:
                    await cur.execute(f"DROP TRIGGER {name}")
            elif on and self._statements:
                for statement in self._statements:
                    await cur.execute(statement)
                self._statements = []


@contextlib.asynccontextmanager
async def _triggers(settings: Settings) -> AsyncIterator[_Triggers]:
    """Whatever happens, the triggers are there again afterwards."""
    conn = await asyncmy.connect(**pool_kwargs(settings))
    triggers = _Triggers(conn)
    try:
        yield triggers
    finally:
        try:
            await triggers.set(True)
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
            async with _triggers(settings) as triggers:
                await triggers.set(variant.triggers)
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


# --- --writes: the consumer's write path alone (history insert, then the forms' upsert whose
# triggers keep the progress counters), in short alternating slices.
WRITE_VARIANTS = (
    ("all on", True, True),
    ("history off", False, True),
    ("triggers off", True, False),
    ("both off", False, False),
)
_SUBMITTED_SHARE = 0.1  # records that change a form's status (the update trigger moves counts)


@dataclass
class _Slice:
    rows: int = 0
    wall_s: float = 0.0
    writer_cpu_s: float = 0.0
    mysql_cpu_s: float = 0.0

    def per_row_us(self) -> dict[str, float]:
        n = max(1, self.rows)
        return {
            "wall": round(self.wall_s * 1e6 / n, 1),
            "writer_cpu": round(self.writer_cpu_s * 1e6 / n, 1),
            "mysql_cpu": round(self.mysql_cpu_s * 1e6 / n, 1),
        }


class _Writes:
    """Batches like the consumer's: ``batch_rows`` records of distinct candidates, newer
    versions each time, a realistic 16-choice payload."""

    def __init__(self, db: Any, ids: list[str], batch_rows: int, mysql_pid: int | None) -> None:
        self._db = db
        self._history = FilingTables(db)
        self._ids = ids
        self._batch_rows = batch_rows
        self._mysql_pid = mysql_pid
        self._rng = random.Random(7)
        catalogue = bodies.synthetic_catalogue()
        self._payloads = [
            codec.pack(bodies.form_body(seed, catalogue)["choices"]) for seed in range(16)
        ]
        self._version = time.time_ns() // 1000

    def _records(self) -> list[FormRecord]:
        records = []
        for cid in self._rng.sample(self._ids, min(self._batch_rows, len(self._ids))):
            self._version += 1
            status = "submitted" if self._rng.random() < _SUBMITTED_SHARE else "saved"
            payload = self._rng.choice(self._payloads)
            origin = Origin("127.0.0.1", f"bench-{self._version}", cid, "candidate")
            records.append(
                FormRecord(cid, BATCH, self._version, self._version, status, payload, origin)
            )
        return records

    async def slice(self, history: bool, seconds: float) -> _Slice:
        out = _Slice()
        mysql_before = self._mysql_cpu()
        cpu_before = time.process_time()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            records = self._records()
            started = time.monotonic()
            if history:
                await self._history.record_saves(records)
            await self._db.upsert_forms(records)
            out.wall_s += time.monotonic() - started
            out.rows += len(records)
        out.writer_cpu_s = time.process_time() - cpu_before
        out.mysql_cpu_s = self._mysql_cpu() - mysql_before
        return out

    def _mysql_cpu(self) -> float:
        if self._mysql_pid is None:
            return 0.0
        return processes.process_cpu_s(self._mysql_pid) or 0.0


async def _run_writes(args: argparse.Namespace) -> int:
    settings = Settings.from_env(os.environ)
    mysql_pid = processes.find_servers(settings).get("mysql")
    results: list[dict[str, Any]] = []
    async with open_database(settings) as db, _triggers(settings) as triggers:
        ids = [str(row[0]) for row in await home_of(db).fetch_all("bench_candidate_ids")]
        writes = _Writes(db, ids, args.batch_rows, mysql_pid)
        await writes.slice(True, 1.0)  # warm: every form exists, caches are hot
        for round_ in range(1, args.rounds + 1):
            shift = (round_ - 1) % len(WRITE_VARIANTS)
            for name, history, trig in WRITE_VARIANTS[shift:] + WRITE_VARIANTS[:shift]:
                await triggers.set(trig)
                part = await writes.slice(history, args.slice)
                results.append(
                    {"variant": name, "round": round_, "rows": part.rows, **part.per_row_us()}
                )
    text = _writes_markdown(results, args)
    args.out.joinpath("writes.json").write_bytes(
        orjson.dumps({"slices": results}, option=orjson.OPT_INDENT_2)
    )
    args.out.joinpath("writes.md").write_text(text)
    print(text)
    return 0


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _writes_markdown(results: Sequence[dict[str, Any]], args: argparse.Namespace) -> str:
    """Medians over the rounds: µs per row of each variant, and each variant's ratio to the
    all-on slice of its own round."""
    base = {r["round"]: r for r in results if r["variant"] == WRITE_VARIANTS[0][0]}
    lines = [
        f"{args.rounds} rounds of {args.slice:g} s slices, {args.batch_rows} records per batch; "
        f"load average {machine.loadavg()[0]:.2f} at the end",
        "",
        "| variant | rows | wall µs/row | writer CPU µs/row | MariaDB CPU µs/row "
        "| all on / variant: wall | writer CPU | MariaDB CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, _, _ in WRITE_VARIANTS:
        mine = [r for r in results if r["variant"] == name]
        cells = [str(sum(r["rows"] for r in mine))]
        cells += [
            f"{_median([r[k] for r in mine]):.1f}" for k in ("wall", "writer_cpu", "mysql_cpu")
        ]
        for k in ("wall", "writer_cpu", "mysql_cpu"):
            ratios = [base[r["round"]][k] / r[k] for r in mine if r[k] and r["round"] in base]
            cells.append(f"{_median(ratios):.2f}" if ratios else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.variants", description=__doc__)
    p.add_argument("--duration", type=int, default=20, help="seconds of load per run (≤ 60)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of every variant (≤ 5)")
    p.add_argument("--candidates", type=int, default=300, help="candidates to log in")
    p.add_argument("--out", type=Path, default=Path("reports/variants"))
    p.add_argument(
        "--writes",
        action="store_true",
        help="the consumer's write path alone (history, triggers) in alternating slices",
    )
    p.add_argument("--slice", type=float, default=2.0, help="--writes: seconds per slice (≤ 10)")
    p.add_argument("--batch-rows", type=int, default=50, help="--writes: records per batch")
    args = p.parse_args(argv)
    csv = os.environ.get("BENCH_CANDIDATES_CSV")
    if not csv:
        p.error("run it inside `python -m loadtest.private --`: it drops triggers for a run")
    if not 1 <= args.duration <= 60 or not 1 <= args.rounds <= 10 or not 0 < args.slice <= 10:
        p.error("--duration 1-60, --rounds 1-10, --slice up to 10")
    args.candidates_csv = csv
    args.out.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_run_writes(args) if args.writes else _run(args))


if __name__ == "__main__":
    sys.exit(main())
