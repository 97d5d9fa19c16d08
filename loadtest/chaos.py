"""``volreg chaos``: kill -9 and restart one component per round under a load of saves, on
private Redis, RabbitMQ and MariaDB instances, and prove that no acknowledged save is lost.

Each round: load for ``--duration`` seconds; a third of the way in the round's component is
SIGKILLed, left down for a moment, restarted; then the harness waits until MySQL holds every
acknowledged save (drain), runs ``volreg reconcile --once --full`` and checks the stores,
reconciling again until they agree (or a time limit). Redis comes back empty (no
persistence); the broker and MariaDB come back with what they had fsynced.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from loadtest.chaos_fleet import Fleet, Member, settings_env
from loadtest.chaos_load import Load, form_keys, publish_catalogue
from loadtest.chaos_report import machine, write_reports
from loadtest.chaos_verify import Check, check, mysql_copies, redis_copies
from loadtest.cluster_local import LocalCluster, Server
from reconciler.mysql_archive import open_archive
from reconciler.redis_index import open_index
from service.core.errors import Unavailable
from service.core.names import names_of
from service.core.settings import Settings
from service.storage.mysql_migrate import migrate
from service.storage.rabbit import open_broker

FAULTS = ("redis", "rabbitmq", "mariadb", "service", "consumer")
_READY_TIMEOUT_S = 120.0
_DRAIN_TIMEOUT_S = 180.0
_CONVERGE_ATTEMPTS = 10
_THINK_S = 0.02


@dataclass(slots=True)
class RoundResult:
    round: int
    fault: str
    target: str
    acked: int = 0
    attempted: int = 0
    failed_requests: int = 0
    down_s: float = 0.0
    restart_s: float = 0.0
    drain_s: float = 0.0
    reconcile_runs: int = 0
    converge_s: float = 0.0  # from the end of the load until the stores agree
    since_kill_s: float = 0.0  # from the kill until the stores agree (load included)
    lost: int = 0
    mismatched: int = 0
    phantom: int = 0
    order_errors: int = 0
    repaired_redis: int = 0
    repaired_mysql: int = 0
    failures: dict[str, int] = field(default_factory=dict)


def main(args: argparse.Namespace) -> int:
    if args.warmup_bench:
        from loadtest.chaos_warmup import bench

        result = asyncio.run(bench(args.warmup_bench, args.keep))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        return 0 if result["forms"] == args.warmup_bench else 1
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown or not faults or args.rounds < 1 or args.duration <= 0:
        print(f"chaos: faults must be some of {', '.join(FAULTS)}; rounds >= 1", file=sys.stderr)
        return 2
    return asyncio.run(_run(args, faults))


async def _run(args: argparse.Namespace, faults: list[str]) -> int:
    # SIGTERM cancels the run, so the finally blocks below stop every server we started.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    root = Path(tempfile.mkdtemp(prefix="volreg-chaos-"))
    cluster = LocalCluster(root)
    fleet: Fleet | None = None
    started = time.monotonic()
    try:
        print(f"chaos: starting private Redis, RabbitMQ, MariaDB under {root}", file=sys.stderr)
        await cluster.start()
        settings = _settings(cluster)
        await migrate(settings)
        await _settle_broker(cluster, settings)
        fleet = Fleet(settings, root, services=2, consumers=2)
        await fleet.start()
        await fleet.wait_ready(_READY_TIMEOUT_S)
        await publish_catalogue(fleet.services[0].base_url, settings.token_secret)
        keys = form_keys(args.forms)
        load = Load(
            [m.base_url for m in fleet.services],
            keys,
            settings.token_secret,
            args.clients,
            _THINK_S,
            args.seed,
        )
        rounds: list[RoundResult] = []
        with tqdm(total=args.rounds, desc="chaos", unit="round", file=sys.stderr) as bar:
            for n in range(args.rounds):
                fault = faults[n % len(faults)]
                result = await _round(n + 1, fault, cluster, fleet, load, settings, keys, args)
                rounds.append(result)
                bar.set_postfix(fault=fault, acked=len(load.ledger.acked), lost=result.lost)
                bar.update()
        summary = _summary(rounds, load, args, time.monotonic() - started)
        if args.json:
            write_reports(summary, args.json)
        print(orjson.dumps(_totals(summary)).decode())
        clean = all(r.lost == r.mismatched == r.phantom == r.order_errors == 0 for r in rounds)
        return 0 if clean else 1
    finally:
        if fleet is not None:
            await fleet.stop()
        await cluster.stop()
        if args.keep:
            print(f"chaos: data and logs kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


def _settings(cluster: LocalCluster) -> Settings:
    return Settings(
        redis_url=cluster.redis.url,
        amqp_url=cluster.rabbit.url,
        mysql_dsn=cluster.mariadb.dsn("volreg_chaos"),
        token_secret=secrets.token_hex(16),
        key_prefix="chaos",
        queue_prefix="chaos",
        shards=64,
        queues=2,
        redis_timeout_s=1.0,
        broker_timeout_s=3.0,
        mysql_timeout_s=3.0,
        retry_after_s=1,
        consume_wait_ms=10,
        # The verdict judges the save path as deployed: saves grouped into batch messages.
        group_commit=True,
        catalogue_ttl_s=2.0,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        # Once drained, Redis ahead of MySQL is drift at once (nothing is in flight).
        reconcile_grace_s=2.0,
        log_level="WARNING",
    )


async def _settle_broker(cluster: LocalCluster, settings: Settings) -> None:
    """Declare the queues, then restart the broker once, cleanly. RabbitMQ 3.10 keeps its
    registry of quorum-queue members in a file it syncs only every few minutes or on a clean
    stop; a node SIGKILLed before that comes back with queues that never elect a leader
    (consumers and confirms then hang for ever). A deployment's queues are long-lived, so
    the harness starts from that state."""
    async with open_broker(settings, names_of(settings)) as broker:
        await broker.wait_connected(_READY_TIMEOUT_S)
    await cluster.rabbit.stop()
    await cluster.rabbit.start()


def _target(fault: str, n: int, cluster: LocalCluster, fleet: Fleet) -> Server | Member:
    if fault == "redis":
        return cluster.redis
    if fault == "rabbitmq":
        return cluster.rabbit
    if fault == "mariadb":
        return cluster.mariadb
    members = fleet.services if fault == "service" else fleet.consumers
    return members[n % len(members)]


async def _round(
    n: int,
    fault: str,
    cluster: LocalCluster,
    fleet: Fleet,
    load: Load,
    settings: Settings,
    keys: list[Any],
    args: argparse.Namespace,
) -> RoundResult:
    target = _target(fault, n, cluster, fleet)
    result = RoundResult(n, fault, target.name)
    ledger = load.ledger
    acked0, attempted0 = len(ledger.acked), ledger.requests
    failures0 = dict(ledger.failures)
    stop = asyncio.Event()
    began = time.monotonic()
    traffic = asyncio.create_task(load.run(stop), name=f"chaos-load-{n}")
    try:
        await asyncio.sleep(args.duration * 0.3)
        killed = time.monotonic()
        await target.kill()
        result.down_s = min(2.0, args.duration * 0.2)
        await asyncio.sleep(result.down_s)
        restarted = time.monotonic()
        await target.start()
        await fleet.wait_ready(_READY_TIMEOUT_S)
        result.restart_s = time.monotonic() - restarted
        await asyncio.sleep(max(0.0, began + args.duration - time.monotonic()))
    finally:
        stop.set()
        await traffic
    result.acked = len(ledger.acked) - acked0
    result.attempted = ledger.requests - attempted0
    result.failures = {
        k: v - failures0.get(k, 0) for k, v in ledger.failures.items() if v > failures0.get(k, 0)
    }
    result.failed_requests = sum(result.failures.values())
    loaded = time.monotonic()
    await _drain(settings, load, keys)
    result.drain_s = time.monotonic() - loaded
    verdict = await _converge(settings, load, keys, result)
    result.converge_s = time.monotonic() - loaded
    result.since_kill_s = time.monotonic() - killed
    result.lost, result.mismatched = verdict.lost, verdict.mismatched
    result.phantom, result.order_errors = verdict.phantom, verdict.order_errors
    return result


async def _drain(settings: Settings, load: Load, keys: list[Any]) -> None:
    """Until MySQL holds every acknowledged save (the consumers caught up)."""
    deadline = time.monotonic() + _DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(Unavailable):
            async with open_archive(settings) as archive:
                mysql = await mysql_copies(archive, keys)
            if not any(
                (mysql[keys[a.form]].version if keys[a.form] in mysql else 0) < a.version
                for a in load.ledger.acked
            ):
                return
        await asyncio.sleep(0.5)


async def _converge(settings: Settings, load: Load, keys: list[Any], result: RoundResult) -> Check:
    """Reconcile (a separate process, like cron would), then check; again while a late
    message still changes MySQL, up to a limit."""
    verdict: Check | None = None
    for _ in range(_CONVERGE_ATTEMPTS):
        report = await _reconcile_once(settings)
        result.reconcile_runs += 1
        result.repaired_redis += int(report.get("repaired_redis", 0))
        result.repaired_mysql += int(report.get("repaired_mysql", 0))
        try:
            async with (
                open_archive(settings) as archive,
                open_index(settings, names_of(settings)) as index,
            ):
                mysql = await mysql_copies(archive, keys)
                redis = await redis_copies(index, keys)
        except Unavailable:
            await asyncio.sleep(1)
            continue
        verdict = check(load.ledger, keys, mysql, redis)
        if verdict.clean:
            return verdict
        await asyncio.sleep(1)
    if verdict is None:
        raise RuntimeError("the stores never answered after the round")
    return verdict


async def _reconcile_once(settings: Settings) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.main.cli",
        "reconcile",
        "--once",
        "--full",
        env=settings_env(replace(settings, log_level="ERROR")),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(300):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return {}
    lines = out.decode().strip().splitlines()
    try:
        report: dict[str, Any] = orjson.loads(lines[-1]) if lines else {}
    except orjson.JSONDecodeError:
        return {}
    return report


def _summary(
    rounds: list[RoundResult], load: Load, args: argparse.Namespace, seconds: float
) -> dict[str, Any]:
    ledger = load.ledger
    return {
        "acked": len(ledger.acked),
        # Each round's check covers every save acknowledged since the start.
        "lost": max(r.lost for r in rounds),
        "mismatched": max(r.mismatched for r in rounds),
        "phantom": max(r.phantom for r in rounds),
        "order_errors": max(r.order_errors for r in rounds),
        "attempted": ledger.requests,
        "failed_requests": sum(ledger.failures.values()),
        "failures": dict(ledger.failures),
        "forms": args.forms,
        "rounds": [_as_dict(r) for r in rounds],
        "config": {
            "rounds": args.rounds,
            "duration_s": args.duration,
            "clients": args.clients,
            "forms": args.forms,
            "faults": args.faults,
            "seed": args.seed,
        },
        "machine": machine(),
        "seconds": round(seconds, 1),
        "finished_at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def _as_dict(r: RoundResult) -> dict[str, Any]:
    out = asdict(r)
    for name in ("down_s", "restart_s", "drain_s", "converge_s", "since_kill_s"):
        out[name] = round(out[name], 2)
    return out


def _totals(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: summary[k] for k in ("acked", "lost", "mismatched", "phantom", "order_errors")}
