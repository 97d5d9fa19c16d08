"""Runs the chosen scenarios one after another against one deployment and collects figures."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
from tqdm import tqdm

from loadtest import bodies, client, luagen, machine, observe, openloop, processes, scrape, wrk
from loadtest.client import PrepError, Session
from loadtest.scenarios import Scenario
from loadtest.spawn import stop
from loadtest.stats import merge
from schemas import urls
from service.core import names
from service.core.errors import Unavailable
from service.core.names import names_of
from service.core.settings import Settings
from service.imports.gendata import DEMO_CANDIDATE
from service.storage.mysql_db import MySQLDatabase
from service.storage.mysql_parts import open_database
from service.storage.rabbit import RabbitBroker, open_broker

log = logging.getLogger(__name__)
_PICKS = 8192
_BODY_VARIANTS = 4
_CATALOGUE_SAMPLE = 64
_BROKER_WAIT_S = 10.0
_SETTLE_S = 1.0


@dataclass(frozen=True, slots=True)
class Options:
    url: str
    scenarios: list[Scenario]
    duration_s: int
    slice_s: int
    connections: int
    threads: int
    candidates: int
    candidates_csv: Path
    password: str
    batch: str
    out_dir: Path
    catch_up_timeout_s: float
    request_timeout_s: float
    profile: str | None = None  # scenario to record with py-spy
    api_pid: int | None = None  # known when this run started the API (--spawn)
    # Saves per candidate per minute the target allows (0: none): the report says so.
    save_limit: int = 0
    consumer_pid: int | None = None  # likewise
    consumer_metrics_url: str | None = None
    metrics_token: str | None = None  # the target's VOLREG_METRICS_TOKEN
    open_loop_rates: tuple[float, ...] = ()  # saves/s, each run after the scenarios
    open_loop_duration_s: float = 10.0


@dataclass
class Observers:
    """Broker and MySQL connections to watch the consumers (None when unreachable)."""

    broker: RabbitBroker | None
    db: observe.VersionStore | None
    mysql: MySQLFigures | None = None


class MySQLFigures(Protocol):
    async def server_figures(self, names: Sequence[str]) -> dict[str, str]: ...


# MariaDB's durability settings (recorded with every report) and the server-wide counters
# whose differences a scenario reports (server-wide: other clients of the server count too).
MYSQL_SETTINGS = ("innodb_flush_log_at_trx_commit", "sync_binlog", "log_bin", "version")
MYSQL_COUNTERS = ("Handler_commit", "Innodb_data_fsyncs", "Innodb_os_log_fsyncs")


@asynccontextmanager
async def _observers(settings: Settings, wanted: bool) -> AsyncIterator[Observers]:
    async with open_broker(settings, names_of(settings)) as broker, open_database(settings) as db:
        versions = db if isinstance(db, observe.VersionStore) else None
        figures = db if isinstance(db, MySQLDatabase) else None
        if not wanted:
            yield Observers(None, None, figures)
            return
        if versions is None:
            log.warning("this MySQL layout cannot list form versions: catch-up not measured")
        if settings.broker != "rabbitmq":
            # Saves go to another broker; the RabbitMQ queues would stay empty.
            log.warning("queue depth: RabbitMQ only (VOLREG_BROKER=%s)", settings.broker)
            yield Observers(None, versions)
            return
        try:
            await broker.wait_connected(_BROKER_WAIT_S)
        except TimeoutError:
            log.warning("broker not reachable: queue depth will not be reported")
            yield Observers(None, versions, figures)
            return
        yield Observers(broker, versions, figures)


@dataclass(frozen=True, slots=True)
class Prepared:
    sessions: list[Session]
    bodies: list[bytes]  # save bodies the scripts rotate through


async def _prepare(options: Options, need_forms: bool) -> Prepared:
    ids = client.read_candidate_ids(options.candidates_csv, options.candidates)
    with tqdm(total=len(ids), desc="log in", unit="candidate", file=sys.stderr) as bar:
        sessions = await client.login_all(options.url, ids, options.password, bar.update)
    catalogue = await client.catalogue(options.url, sessions[0], _CATALOGUE_SAMPLE)
    catalogue = catalogue or bodies.synthetic_catalogue()
    variants = [bodies.form_body(seed, catalogue) for seed in range(_BODY_VARIANTS + 1)]
    if need_forms:
        with tqdm(total=len(sessions), desc="seed forms", unit="form", file=sys.stderr) as bar:
            await client.save_all(options.url, sessions, options.batch, variants[0], bar.update)
    return Prepared(sessions, [orjson.dumps(v) for v in variants[1:]])


async def _check_naive(options: Options) -> None:
    path = urls.NAIVE_FORM.format(candidate_id=DEMO_CANDIDATE, batch=options.batch)
    status = await client.probe(options.url, path)
    if status in (404, 405):
        raise PrepError(
            "the naive scenario needs the server's benchmark route: start it with "
            "`volreg serve --naive` (or VOLREG_BENCH_NAIVE=1), or use --spawn"
        )


def _write_script(options: Options, scenario: Scenario, prepared: Prepared, scripts: Path) -> Path:
    sessions = prepared.sessions
    count = len(sessions)
    plan = luagen.Plan(
        scenario=scenario,
        batch=options.batch,
        candidates=[s.candidate_id for s in sessions],
        tokens=[s.token for s in sessions],
        bodies=prepared.bodies,
        picks=bodies.picks(count, _PICKS, scenario.zipf) if count else [],
    )
    # The script holds bearer tokens: it lives in a private temporary folder, not the report.
    path = scripts / f"{scenario.name}.lua"
    path.write_text(luagen.script(plan))
    return path


@asynccontextmanager
async def _profiling(options: Options, scenario: Scenario) -> AsyncIterator[None]:
    """py-spy records the API for the scenario's duration (flame graph SVG)."""
    if options.profile != scenario.name or options.api_pid is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    svg = options.out_dir / f"{scenario.name}-flame.svg"
    proc = await asyncio.create_subprocess_exec(
        spy,
        "record",
        "--pid",
        str(options.api_pid),
        "--subprocesses",
        "--nolineno",  # one box per function: a graph small enough to keep in docs/
        "--gil",  # only code holding the GIL: idle pool threads are not work
        "--rate",
        "200",
        "--duration",
        str(options.duration_s),
        "--format",
        "flamegraph",
        "--output",
        str(svg),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        await stop(proc, wait_s=30, terminate=False)  # py-spy stops after the duration
        if svg.exists():
            svg.write_text(_portable_svg(svg.read_text(), scenario.name))
        print(f"flame graph: {svg}", file=sys.stderr)


def _portable_svg(text: str, scenario: str) -> str:
    """Drop this machine's paths (py-spy's command line, the interpreter) from the graph."""
    title = f"py-spy: the API under the {scenario} scenario"
    text = re.sub(r'(<text id="title"[^>]*>)[^<]*(</text>)', rf"\g<1>{title}\g<2>", text)
    return re.sub(r"/[^\s\"<>()]*/(python3(?:\.\d+)?|py-spy)\b", r"\1", text)


async def _run_slices(
    options: Options, scenario: Scenario, script: Path, started: float
) -> tuple[list[wrk.WrkRun], list[dict[str, Any]]]:
    runs: list[wrk.WrkRun] = []
    timeline: list[dict[str, Any]] = []
    slices = max(1, -(-options.duration_s // options.slice_s))
    with tqdm(total=slices, desc=scenario.name, unit="slice", file=sys.stderr) as bar:
        for _ in range(slices):
            t = time.monotonic() - started
            run = await wrk.run(
                options.url,
                script,
                options.slice_s,
                options.connections,
                options.threads,
                options.request_timeout_s,
            )
            runs.append(run)
            timeline.append(
                {
                    "t": round(t, 3),
                    "seconds": round(run.runtime_s, 3),
                    "rps": round(run.rps, 1),
                    "p50_ms": run.percentile(50),
                    "p99_ms": run.percentile(99),
                    "errors": run.error_count,
                }
            )
            bar.set_postfix(rps=f"{run.rps:,.0f}", p99=f"{run.percentile(99):.1f}ms")
            bar.update(1)
    return runs, timeline


async def _catch_up(
    options: Options, observers: Observers, sessions: list[Session], stopped: float
) -> float | None:
    """Seconds from the end of the load until MySQL held every version Redis serves."""
    if observers.db is None:
        return None
    targets = await client.versions(options.url, sessions, options.batch)
    return await observe.wait_caught_up(
        observers.db, options.batch, targets, stopped, options.catch_up_timeout_s
    )


async def _scenario(
    options: Options,
    scenario: Scenario,
    prepared: Prepared,
    observers: Observers,
    servers: dict[str, int],
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="volreg-loadtest-") as scripts:
        script = _write_script(options, scenario, prepared, Path(scripts))
        return await _measure(options, scenario, prepared.sessions, observers, script, servers)


async def _mysql_counters(observers: Observers) -> dict[str, float]:
    if observers.mysql is None:
        return {}
    try:
        figures = await observers.mysql.server_figures(MYSQL_COUNTERS)
    except Unavailable as exc:
        log.warning("MySQL counters not read: %s", exc)
        return {}
    return {k: float(v) for k, v in figures.items()}


@dataclass
class _Counters:
    """What the API, the consumer and MySQL had counted at one moment."""

    api: dict[str, float]
    consumer: dict[str, float]
    mysql: dict[str, float]

    @classmethod
    async def read(cls, options: Options, observers: Observers) -> _Counters:
        return cls(
            await scrape.samples(options.url + urls.METRICS, options.metrics_token),
            await scrape.samples(options.consumer_metrics_url, options.metrics_token),
            await _mysql_counters(observers),
        )


def _per(value: float, requests: int, digits: int = 4) -> float | None:
    return round(value / requests, digits) if requests else None


def _chain_figures(
    before: _Counters, after: _Counters, requests: int, chain: processes.ChainCpu
) -> dict[str, Any]:
    """Group commit, MySQL commits per request, CPU per request of each process."""
    api = (before.api, after.api)
    messages = scrape.delta(*api, f"{names.METRIC_GROUP_RECORDS}_count")
    records = scrape.delta(*api, f"{names.METRIC_GROUP_RECORDS}_sum")
    waited = scrape.delta(*api, f"{names.METRIC_GROUP_WAIT}_sum")
    confirms = scrape.delta(*api, f"{names.METRIC_CONFIRM}_count")
    confirm_s = scrape.delta(*api, f"{names.METRIC_CONFIRM}_sum")
    flushes = {
        reason: scrape.delta(*api, f'{names.METRIC_GROUP_FLUSHES}{{reason="{reason}"}}')
        for reason in ("idle", "drained", "window", "count", "bytes")
    }
    commits = scrape.delta(
        before.consumer, after.consumer, f'{names.METRIC_MYSQL_COMMITS}{{writer="consumer"}}'
    ) + scrape.delta(*api, f'{names.METRIC_MYSQL_COMMITS}{{writer="naive"}}')
    consumer = (before.consumer, after.consumer)
    upsert_s = scrape.delta(*consumer, f"{names.METRIC_CONSUME_UPSERT}_sum")
    history_s = scrape.delta(*consumer, f"{names.METRIC_CONSUME_HISTORY}_sum")
    mysql = {
        name: _per(after.mysql[name] - before.mysql[name], requests)
        for name in MYSQL_COUNTERS
        if name in before.mysql and name in after.mysql
    }
    return {
        "cpu_ms_per_request": chain.ms_per_request(requests),
        "group_commit": {
            "messages": int(messages),
            "records": int(records),
            "records_per_message": round(records / messages, 2) if messages else None,
            # From a batch's first save to its send: the wait group commit added (at most).
            "mean_wait_ms": round(waited * 1000 / messages, 3) if messages else None,
            "mean_confirm_ms": round(confirm_s * 1000 / confirms, 3) if confirms else None,
            "flushes": {k: int(v) for k, v in flushes.items() if v},
        },
        "mysql_commits_per_request": _per(commits, requests),
        # The consumer's wall time in the forms' upsert (progress triggers included) and in
        # the save-history insert, per request.
        "consumer_upsert_ms_per_request": _per(upsert_s * 1000, requests),
        "consumer_history_ms_per_request": _per(history_s * 1000, requests),
        "mysql_server_wide_per_request": mysql,
    }


async def _measure(
    options: Options,
    scenario: Scenario,
    sessions: list[Session],
    observers: Observers,
    script: Path,
    servers: dict[str, int],
) -> dict[str, Any]:
    cpu = machine.CpuWindow()
    trees = {"api": options.api_pid, "consumer": options.consumer_pid}
    chain = processes.ChainCpu(servers, {k: v for k, v in trees.items() if v is not None})
    load_before = machine.loadavg()
    started = time.monotonic()
    queue: dict[str, Any] | None = None
    counted = await _Counters.read(options, observers)
    async with AsyncExitStack() as stack:
        samples = None
        if scenario.publishes and observers.broker is not None:
            samples = await stack.enter_async_context(observe.sampling(observers.broker, started))
        cpu.start()
        chain.start()
        api_before = machine.tree_cpu_s(options.api_pid) if options.api_pid else None
        async with _profiling(options, scenario):
            runs, timeline = await _run_slices(options, scenario, script, started)
            stopped = time.monotonic()  # the load ends here, not when py-spy has written
            cpu.stop()
            api_after = machine.tree_cpu_s(options.api_pid) if options.api_pid else None
        if scenario.publishes:
            caught_up = await _catch_up(options, observers, sessions, stopped)
            await asyncio.sleep(0.5)  # a few more samples at depth 0
            queue = {
                "max_depth": samples.max_depth if samples else None,
                "drain_s": samples.drained_after(stopped - started) if samples else None,
                "mysql_caught_up_s": None if caught_up is None else round(caught_up, 3),
                "samples": [[round(t, 2), d] for t, d in samples.points] if samples else [],
            }
    # Until MySQL caught up: the consumer's and MySQL's work for these requests is counted.
    chain.stop()
    merged = merge(runs)
    chain_figures = _chain_figures(
        counted, await _Counters.read(options, observers), merged.requests, chain
    )
    cpus = os.cpu_count() or 1
    return {
        "about": scenario.about,
        "requests": merged.requests,
        "seconds": round(merged.runtime_s, 3),
        "rps": round(merged.rps, 1),
        "errors": {**merged.errors, "total": merged.error_count},
        "latency_ms": {k: round(v, 3) for k, v in merged.latency_ms.items()},
        "timeline": timeline,
        "loadavg_before": load_before,
        "loadavg_after": machine.loadavg(),
        "machine_cpu_busy": round(cpu.machine_busy, 3),
        "machine_cpu_ms_per_request": (
            round(cpu.machine_busy * merged.runtime_s * cpus * 1000 / merged.requests, 3)
            if merged.requests
            else None
        ),
        "generator_cpu_share": round(cpu.generator_cpu_s / max(1e-9, merged.runtime_s * cpus), 3),
        # CPU the API spent per request: steadier than req/s on a shared machine.
        "api_cpu_ms_per_request": (
            round((api_after - api_before) * 1000 / merged.requests, 3)
            if api_before is not None and api_after is not None and merged.requests
            else None
        ),
        **chain_figures,
        "queue": queue,
    }


_OPEN_LOOP_MAX_REQUESTS = 100_000


async def _open_loop(
    options: Options,
    prepared: Prepared,
    observers: Observers,
    servers: dict[str, int],
    rate: float,
) -> dict[str, Any]:
    """Saves at a fixed arrival rate; latency from each one's intended send time."""
    host = options.url.split("://", 1)[-1]
    requests = [
        openloop.put_request(
            host,
            urls.FORM.format(candidate_id=s.candidate_id, batch=options.batch),
            s.token,
            prepared.bodies[i % len(prepared.bodies)],
        )
        for i, s in enumerate(prepared.sessions)
    ]
    plan = openloop.Plan(
        options.url,
        requests,
        rate,
        options.open_loop_duration_s,
        _OPEN_LOOP_MAX_REQUESTS,
        options.request_timeout_s,
    )
    trees = {"api": options.api_pid, "consumer": options.consumer_pid}
    chain = processes.ChainCpu(servers, {k: v for k, v in trees.items() if v is not None})
    load_before = machine.loadavg()
    counted = await _Counters.read(options, observers)
    chain.start()
    outcome = await openloop.run(plan)
    stopped = time.monotonic()
    caught_up = await _catch_up(options, observers, prepared.sessions, stopped)
    chain.stop()
    after = await _Counters.read(options, observers)
    return {
        **outcome.to_json(),
        "loadavg_before": load_before,
        "mysql_caught_up_s": None if caught_up is None else round(caught_up, 3),
        **_chain_figures(counted, after, outcome.ok, chain),
    }


async def _mysql_settings(observers: Observers) -> dict[str, str]:
    if observers.mysql is None:
        return {}
    try:
        return await observers.mysql.server_figures(MYSQL_SETTINGS)
    except Unavailable as exc:
        log.warning("MySQL settings not read: %s", exc)
        return {}


async def run(options: Options, settings: Settings) -> dict[str, Any]:
    """Every scenario in turn; returns the report (also written by the caller)."""
    wrk.wrk_binary()  # fail before logging anyone in
    if any(s.name == "naive" for s in options.scenarios):
        await _check_naive(options)
    prepared = Prepared([], [])
    if options.open_loop_rates or any(s.needs_tokens for s in options.scenarios):
        prepared = await _prepare(options, any(s.needs_saved_forms for s in options.scenarios))
    started_at = datetime.now().astimezone().isoformat(timespec="seconds")
    results: dict[str, Any] = {}
    servers = processes.find_servers(settings)
    wanted = bool(options.open_loop_rates) or any(s.publishes for s in options.scenarios)
    async with _observers(settings, wanted) as observers:
        mysql_settings = await _mysql_settings(observers)
        for i, scenario in enumerate(options.scenarios):
            if i:
                await asyncio.sleep(_SETTLE_S)
            results[scenario.name] = await _scenario(
                options, scenario, prepared, observers, servers
            )
        open_loop = []
        for rate in options.open_loop_rates:
            await asyncio.sleep(_SETTLE_S)
            print(
                f"open loop: {rate:g} saves/s for {options.open_loop_duration_s:g} s",
                file=sys.stderr,
            )
            open_loop.append(await _open_loop(options, prepared, observers, servers, rate))
    return {
        "meta": {
            "started_at": started_at,
            "url": options.url,
            "duration_s": options.duration_s,
            "slice_s": options.slice_s,
            "connections": options.connections,
            "threads": options.threads,
            "candidates": len(prepared.sessions),
            "batch": options.batch,
            "save_limit_per_candidate_per_min": options.save_limit,
            "machine": machine.describe(),
            "server_pids": servers,
            "mysql": mysql_settings,
        },
        "scenarios": results,
        "open_loop": open_loop,
    }
