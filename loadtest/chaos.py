"""``volreg chaos``: one fault per round under a load of saves, on private Redis, RabbitMQ and
MariaDB instances (and, with ``--broker rocketmq``, a private RocketMQ carrying the saves), and
a verdict that fails when an acknowledged save is lost.

A round: load; the fault is injected (a SIGKILL of a live process, restarted, or a partition
or added latency on a loopback proxy, lifted); the harness waits until the component answers
again and the consumers are subscribed, and keeps the load going for a while after that. The
forms acknowledged just before and just after the fault are held (not saved again this
round), so each of those saves stays its form's newest and its loss would show. Then:

1. drain: until the queues are empty and MySQL holds every acknowledged save (or MySQL stops
   changing with the queues empty); a drain that does not end fails the round;
2. verdict *before any repair*: MySQL, written by the consumers alone, must hold every
   acknowledged save with its content (``lost_before_repair``, ``content_mismatched``);
   dead letters are taken and counted with their reasons;
3. the Redis round only: the forms left untouched since the wipe must come back from MySQL,
   half through the API's read path, half through ``volreg warmup``;
4. ``volreg reconcile --once --full`` in a new process, then both stores are checked
   (``lost``, ``mismatched``, content).

Each round also proves its fault: the process was alive and killed and runs again under a
new PID (``recovered_s`` after the restart), or the proxy held or delayed traffic while saves
were in flight; saves were acknowledged after recovery. Any count above zero, or a round that
could not prove its fault, makes the run fail (exit code 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from loadtest.chaos_broker import purge_form_queues, queue_states, take_dead_letters
from loadtest.chaos_faults import PROCESS_FAULTS, SABOTAGE, faults_for
from loadtest.chaos_fleet import Fleet, Member, settings_env
from loadtest.chaos_load import Load, choices_for, form_keys, publish_catalogue, salt_of
from loadtest.chaos_proxy import Proxy
from loadtest.chaos_report import machine, write_reports
from loadtest.chaos_verify import (
    Check,
    Copies,
    before_repair,
    check,
    lost_in,
    mysql_copies,
    newest_acks,
    redis_copies,
)
from loadtest.cluster_local import LocalCluster, RabbitServer, Server
from loadtest.rocket_local import RocketMQ, RocketNode
from reconciler.mysql_archive import open_archive
from reconciler.redis_index import open_index
from schemas.records import FormRecord
from service.core import codec
from service.core.errors import Unavailable
from service.core.names import names_of
from service.core.settings import Settings
from service.storage.mysql_migrate import migrate
from service.storage.rabbit import open_broker

_READY_TIMEOUT_S = 120.0
_RECOVER_TIMEOUT_S = 90.0
_DRAIN_TIMEOUT_S = 120.0
_DRAIN_QUIET_S = 10.0  # queues empty and MySQL unchanged this long: drained (a consumer's
# retry back-off is at most 5 s, so a slow batch is not mistaken for a loss)
_CONVERGE_ATTEMPTS = 6
_THINK_S = 0.02
_HOLD_S = 1.0  # acknowledgements held before the fault and after recovery
_AFTER_RECOVERY_S = 4.0  # load after recovery, at least
_LATENCY_S = 0.8  # per chunk, each way, in the slow-* rounds
_IN_FAULT_FROM_S = 1.0  # a save still unconfirmed this long into a partition is stuck in it
_SABOTAGE_FORMS = 3
_READ_RETRIES = 3  # a read refused (503) or timed out on a busy machine is asked again
_BROKER_DISK_MB = 96
_ROCKETMQ_HEAP = "512m"  # the broker's (inside the proxy's JVM); the name server keeps 256 MB
# RocketMQ shows no count of messages received and never acked: they come back once their
# invisible duration is over (and the broker's revive scan has put them back), so the drain
# calls MySQL quiet only after that much longer.
_ROCKETMQ_REVIVE_S = 15.0

Target = Server | Member | Proxy | RocketNode


@dataclass(slots=True)
class RoundResult:
    round: int
    fault: str
    target: str
    injected: bool = False
    problems: list[str] = field(default_factory=list)
    proof: dict[str, Any] = field(default_factory=dict)
    recovered_s: float | None = None
    load_after_recovery_s: float = 0.0
    acked_after_recovery: int = 0
    checked: int = 0
    acked: int = 0
    attempted: int = 0
    failed_requests: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    down_s: float = 0.0
    drain_s: float = 0.0
    lost_before_repair: int = 0
    content_mismatched: int = 0
    dead_lettered: int = 0
    dead_letter_reasons: list[str] = field(default_factory=list)
    restore_failed: int = 0
    reconcile_runs: int = 0
    repaired_redis: int = 0
    repaired_mysql: int = 0
    converge_s: float = 0.0
    lost: int = 0
    mismatched: int = 0
    order_errors: int = 0
    sabotaged: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        counts = (
            self.lost_before_repair,
            self.content_mismatched,
            self.dead_lettered,
            self.restore_failed,
            self.lost,
            self.mismatched,
            self.order_errors,
        )
        return not self.injected or bool(self.problems) or any(counts)


@dataclass(slots=True)
class Totals:
    """Acknowledged saves (indices) and forms found wrong in any round, each counted once."""

    lost_before_repair: set[int] = field(default_factory=set)
    lost: set[int] = field(default_factory=set)
    content: set[int] = field(default_factory=set)
    mismatched: set[int] = field(default_factory=set)


@dataclass(slots=True)
class Run:
    args: argparse.Namespace
    cluster: LocalCluster
    rocket: RocketMQ | None
    fleet: Fleet
    load: Load
    settings: Settings
    keys: list[Any]
    broker_link: Proxy  # APIs → broker
    mysql_link: Proxy  # consumers → MariaDB
    totals: Totals = field(default_factory=Totals)


def main(args: argparse.Namespace) -> int:
    if args.warmup_bench:
        from loadtest.chaos_warmup import bench

        result = asyncio.run(bench(args.warmup_bench, args.keep))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        return 0 if result["forms"] == args.warmup_bench else 1
    kinds = faults_for(args.broker)
    faults = [f.strip() for f in (args.faults or ",".join(kinds)).split(",") if f.strip()]
    sabotage = [s.strip() for s in (args.sabotage or "").split(",") if s.strip()]
    unknown = sorted((set(faults) - set(kinds)) | (set(sabotage) - set(SABOTAGE)))
    if "disk-full" in faults and os.geteuid() != 0:
        print("chaos: disk-full mounts a small tmpfs: run as root", file=sys.stderr)
        return 2
    if unknown or not faults or args.rounds < 1 or args.duration <= 0:
        print(
            f"chaos: faults on {args.broker} must be some of {', '.join(kinds)}, sabotage some of "
            f"{', '.join(SABOTAGE)}; rounds >= 1",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(_run(args, faults, sabotage))


async def _run(args: argparse.Namespace, faults: list[str], sabotage: list[str]) -> int:
    # SIGTERM cancels the run, so the finally blocks below stop every server we started.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    root = Path(tempfile.mkdtemp(prefix="volreg-chaos-"))
    cluster = LocalCluster(root, broker_disk_mb=_BROKER_DISK_MB if "disk-full" in faults else 0)
    settings = _settings(cluster)
    # RocketMQ carries the saves; RabbitMQ stays for the catalogue broadcast (not faulted).
    rocket = (
        RocketMQ(root, settings.queue_prefix, settings.queues, _ROCKETMQ_HEAP)
        if args.broker == "rocketmq"
        else None
    )
    fleet: Fleet | None = None
    links: list[Proxy] = []
    started = time.monotonic()
    try:
        print(
            f"chaos: starting private Redis, RabbitMQ, MariaDB{', RocketMQ' if rocket else ''} "
            f"under {root}",
            file=sys.stderr,
        )
        await asyncio.gather(cluster.start(), *([rocket.start()] if rocket else []))
        await migrate(settings)
        if rocket is None:
            await _settle_broker(cluster, settings)
            broker_link = Proxy("127.0.0.1", cluster.rabbit.port)
        else:
            settings = replace(
                settings,
                broker="rocketmq",
                rocketmq_endpoints=rocket.endpoints,
                rocketmq_broker_addr=rocket.broker_addr,
            )
            broker_link = Proxy("127.0.0.1", rocket.grpc_port)
        mysql_link = Proxy("127.0.0.1", cluster.mariadb.port)
        links = [broker_link, mysql_link]
        for link in links:
            await link.start()
        if rocket is None:
            serving = replace(settings, amqp_url=broker_link.url(settings.amqp_url))
        else:
            serving = replace(settings, rocketmq_endpoints=f"127.0.0.1:{broker_link.port}")
        fleet = Fleet(
            serving,
            replace(settings, mysql_dsn=mysql_link.url(settings.mysql_dsn)),
            root,
            services=2,
            consumers=2,
        )
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
        run = Run(args, cluster, rocket, fleet, load, settings, keys, broker_link, mysql_link)
        rounds: list[RoundResult] = []
        with tqdm(total=args.rounds, desc="chaos", unit="round", file=sys.stderr) as bar:
            for n in range(args.rounds):
                fault = faults[n % len(faults)]
                last = n == args.rounds - 1
                result = await _round(n + 1, fault, run, sabotage if last else [])
                rounds.append(result)
                bar.set_postfix(fault=fault, acked=len(load.ledger.acked), failed=result.failed)
                bar.update()
        summary = _summary(rounds, run, time.monotonic() - started)
        if args.json:
            write_reports(summary, args.json)
        print(orjson.dumps(_totals(summary)).decode())
        return 0 if summary["passed"] else 1
    finally:
        if fleet is not None:
            await fleet.stop()
        for link in links:
            await link.close()
        await cluster.stop()
        if rocket is not None:
            await rocket.stop()
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
        # The clients save each form many times a second: no per-candidate save limit.
        save_rate_limit=0,
        idempotency_keys_max=0,
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


def _target(fault: str, n: int, run: Run) -> Target:
    if fault == "redis":
        return run.cluster.redis
    if fault in ("rocketmq", "namesrv"):
        assert run.rocket is not None
        return run.rocket.proxy if fault == "rocketmq" else run.rocket.namesrv
    if fault in ("rabbitmq", "disk-full"):
        return run.cluster.rabbit
    if fault == "mariadb":
        return run.cluster.mariadb
    if fault in ("partition", "slow-broker"):
        return run.broker_link
    if fault == "slow-mysql":
        return run.mysql_link
    members = run.fleet.services if fault == "service" else run.fleet.consumers
    return members[n % len(members)]


def _target_name(fault: str, target: Target) -> str:
    if fault == "slow-mysql":
        return "consumers → MariaDB link"
    if isinstance(target, Proxy):
        return "APIs → broker link"
    return target.name


async def _round(n: int, fault: str, run: Run, sabotage: list[str]) -> RoundResult:
    target = _target(fault, n, run)
    result = RoundResult(n, fault, _target_name(fault, target))
    load, ledger, args = run.load, run.load.ledger, run.args
    acked0, attempted0 = len(ledger.acked), ledger.requests
    failures0 = dict(ledger.failures)
    hold = max(1, args.forms // 8)
    untouched: set[int] = set()
    stop = asyncio.Event()
    began = time.monotonic()
    traffic = asyncio.create_task(load.run(stop), name=f"chaos-load-{n}")
    try:
        await asyncio.sleep(max(2.0, args.duration * 0.3))
        if fault == "redis":
            untouched = _pause_for_wipe(load)
            await load.settle(untouched)
        load.hold_acks(hold)
        await asyncio.sleep(_HOLD_S)
        result.proof["in_flight_at_fault"] = len(load.in_flight)
        result.down_s = min(2.0, args.duration * 0.2) if fault in PROCESS_FAULTS else 5.0
        lift = await _inject(fault, target, run, result)
        load.stop_holding()
        restarted = time.monotonic()
        await lift()
        if await _wait_recovered(run, result):
            recovered = time.monotonic()
            result.recovered_s = round(recovered - restarted, 2)
            acked_at_recovery = len(ledger.acked)
            load.hold_acks(len(load.held) + hold)
            await asyncio.sleep(_HOLD_S)
            load.stop_holding()
            remaining = began + args.duration - time.monotonic()
            await asyncio.sleep(max(_AFTER_RECOVERY_S - _HOLD_S, remaining))
            result.load_after_recovery_s = round(time.monotonic() - recovered, 2)
            result.acked_after_recovery = len(ledger.acked) - acked_at_recovery
            if result.acked_after_recovery == 0:
                result.problems.append("no save was acknowledged after recovery")
        result.injected = not result.problems
    finally:
        load.stop_holding()
        stop.set()
        await traffic
    result.proof["held_after_failure"] = len(load.held_failed)
    result.acked = len(ledger.acked) - acked0
    result.attempted = ledger.requests - attempted0
    result.failures = {
        k: v - failures0.get(k, 0) for k, v in ledger.failures.items() if v > failures0.get(k, 0)
    }
    result.failed_requests = sum(result.failures.values())
    held = set(load.held)
    load.resume_all()
    await _verify(run, result, held, untouched, sabotage)
    return result


def _pause_for_wipe(load: Load) -> set[int]:
    """A quarter of the forms acknowledged so far: nobody saves them again until the round's
    verdict, so after the wipe their newest save exists only in the broker and MySQL."""
    forms = set(sorted(newest_acks(load.ledger))[::4])
    load.paused |= forms
    return forms


async def _inject(
    fault: str, target: Target, run: Run, result: RoundResult
) -> Callable[[], Awaitable[None]]:
    """Inject the fault, hold it ``result.down_s``; returns what lifts it (restart, heal)."""
    if isinstance(target, Proxy):
        held0, delayed0 = target.held, target.delayed
        started = time.monotonic()
        if fault == "partition":
            target.partition()
        else:
            target.latency_s = _LATENCY_S
        if fault == "slow-mysql":
            await asyncio.sleep(result.down_s / 2)
            # The consumers fall behind: acknowledged saves not in MySQL yet (asked directly).
            with contextlib.suppress(Unavailable):
                mysql = await _mysql(run)
                result.proof["behind_in_fault"] = len(lost_in(run.load.ledger, run.keys, mysql))
        else:
            result.proof["in_flight_in_fault"] = await _peak_in_flight(run, started, result)
        await asyncio.sleep(max(0.0, started + result.down_s - time.monotonic()))

        async def lift() -> None:
            target.heal()
            target.latency_s = 0.0
            result.proof["chunks_held"] = target.held - held0
            result.proof["chunks_delayed"] = target.delayed - delayed0
            touched = target.held - held0 if fault == "partition" else target.delayed - delayed0
            if touched == 0:
                result.problems.append("the proxy saw no traffic to hold or delay")
            if result.proof.get("in_flight_in_fault", 1) == 0:
                result.problems.append("no save was in flight during the fault")
            if result.proof.get("behind_in_fault", 1) == 0:
                result.problems.append("MySQL was not behind while its link was slow")

        return lift
    if fault == "disk-full":
        assert isinstance(target, RabbitServer)
        return await _fill_disk(target, run, result)
    pid = target.pid
    result.proof["pid_before"] = pid
    if not target.alive():
        result.problems.append(f"{target.name} was not running when it was to be killed")
    await target.kill()
    if target.alive():
        result.problems.append(f"{target.name} survived SIGKILL")
    await asyncio.sleep(result.down_s)

    async def restart() -> None:
        await target.start()
        result.proof["pid_after"] = target.pid
        if target.pid is None or target.pid == pid or not target.alive():
            result.problems.append(f"{target.name} is not running under a new PID")

    return restart


async def _peak_in_flight(run: Run, started: float, result: RoundResult) -> int:
    """The most saves in flight at once (mid-confirm) from 1 s into the fault to its end. One
    sample is not enough: an adapter that notices the dead link (RocketMQ's route monitor,
    within about 2.5 s) refuses new saves at once, and the older ones time out."""
    await asyncio.sleep(_IN_FAULT_FROM_S)
    peak = 0
    while time.monotonic() < started + result.down_s:
        peak = max(peak, len(run.load.in_flight))
        await asyncio.sleep(0.1)
    return peak


async def _fill_disk(
    broker: RabbitServer, run: Run, result: RoundResult
) -> Callable[[], Awaitable[None]]:
    """Fill the broker's data directory to the last byte with a file of ours; lifting the
    fault deletes it (and restarts the broker if it did not survive)."""
    filler = broker.data / "chaos-filler"
    pid = broker.pid
    failed0 = sum(run.load.ledger.failures.values())
    size = 0
    with filler.open("wb") as f:
        # Grow it until ENOSPC at each step size (the broker writes meanwhile).
        for step in (2**20, 2**16, 2**12):
            with contextlib.suppress(OSError):
                while True:
                    os.posix_fallocate(f.fileno(), size, step)
                    size += step
    after = os.statvfs(broker.data)
    result.proof |= {
        "filled_mb": round(size / 2**20, 1),
        "free_bytes": after.f_bavail * after.f_frsize,
    }
    if result.proof["free_bytes"] > 2**20:
        result.problems.append(f"the broker's disk was not full: {after.f_bavail} blocks free")
    await asyncio.sleep(result.down_s)

    async def lift() -> None:
        result.proof["failed_saves_in_fault"] = sum(run.load.ledger.failures.values()) - failed0
        filler.unlink()
        result.proof["broker_survived"] = broker.alive() and broker.pid == pid
        if not broker.alive():
            await broker.kill()  # whatever is left of it
            await broker.start()
        else:
            # RabbitMQ's quorum queues crash on ENOSPC; an idle one (the dead-letter queue)
            # may stay down. The operator's step after freeing space is then a restart.
            try:
                await _take_dead_letters(run, result)
            except Unavailable:
                result.proof["queue_down_after_fault"] = True
                await broker.stop()
                await broker.start()
                result.proof["broker_restarted"] = True
        if result.proof["failed_saves_in_fault"] == 0:
            result.problems.append("no save failed while the broker's disk was full")

    return lift


async def _wait_recovered(run: Run, result: RoundResult) -> bool:
    """Every API ready, every consumer subscribed to every form queue, a save acknowledged."""
    deadline = time.monotonic() + _RECOVER_TIMEOUT_S
    try:
        await run.fleet.wait_ready(_RECOVER_TIMEOUT_S)
        await _consumers_subscribed(run, deadline)
        acked = len(run.load.ledger.acked)
        while len(run.load.ledger.acked) == acked:
            if time.monotonic() > deadline:
                raise TimeoutError("no save acknowledged")
            await asyncio.sleep(0.05)
    except (RuntimeError, TimeoutError) as exc:
        result.problems.append(f"did not recover within {_RECOVER_TIMEOUT_S:.0f} s: {exc}")
        return False
    return True


async def _consumers_subscribed(run: Run, deadline: float) -> None:
    want = len(run.fleet.consumers)
    while True:
        with contextlib.suppress(Unavailable, TimeoutError):
            states = await queue_states(run.settings, _consumer_pids(run))
            if all(s.consumers >= want for s in states.values()):
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"not every form queue has {want} consumers")
        await asyncio.sleep(0.3)


def _consumer_pids(run: Run) -> list[int]:
    return [m.pid for m in run.fleet.consumers if m.pid is not None and m.alive()]


async def _verify(
    run: Run, result: RoundResult, held: set[int], untouched: set[int], sabotage: list[str]
) -> None:
    ledger, keys, totals = run.load.ledger, run.keys, run.totals
    loaded = time.monotonic()
    if "drop-message" in sabotage:
        result.sabotaged["drop-message"] = await _drop_messages(run, held | untouched)
    if not await _drain(run):
        result.problems.append(f"the drain did not end within {_DRAIN_TIMEOUT_S:.0f} s")
    result.drain_s = round(time.monotonic() - loaded, 2)
    with contextlib.suppress(TimeoutError):
        await _consumers_subscribed(run, time.monotonic() + 10)
    await _sabotage_rows(run, result, sabotage, held | untouched)

    mysql = await _mysql(run)
    verdict = before_repair(ledger, keys, mysql)
    result.lost_before_repair = len(verdict.lost)
    totals.lost_before_repair |= verdict.lost
    content = set(verdict.content)

    try:
        await _take_dead_letters(run, result)
    except Unavailable as exc:
        result.problems.append(f"the dead-letter queue could not be read: {exc.__cause__}")

    if result.fault == "redis":
        result.checked = len(untouched)
        result.restore_failed = await _restore(run, result, untouched, mysql)
    else:
        result.checked = len(held)
    if result.checked == 0:
        result.problems.append("the round checked no form")

    final = await _converge(run, result)
    result.converge_s = round(time.monotonic() - loaded, 2)
    content |= final.content
    result.content_mismatched = len(content)
    result.lost, result.mismatched = len(final.lost), len(final.mismatched)
    result.order_errors = final.order_errors
    totals.lost |= final.lost
    totals.content |= content
    totals.mismatched |= final.mismatched


async def _take_dead_letters(run: Run, result: RoundResult) -> None:
    count, reasons = await take_dead_letters(run.settings)
    result.dead_lettered += count
    result.dead_letter_reasons += reasons


async def _mysql(run: Run) -> Copies:
    for _ in range(30):
        with contextlib.suppress(Unavailable):
            async with open_archive(run.settings) as archive:
                return await mysql_copies(archive, run.keys)
        await asyncio.sleep(1)
    raise RuntimeError("MySQL never answered after the round")


async def _drain(run: Run) -> bool:
    """Until the form queues are empty and MySQL holds every acknowledged save, or the queues
    stay empty and MySQL unchanged for a while (whatever is missing then is not coming).
    False when neither happened in time."""
    ledger, keys = run.load.ledger, run.keys
    quiet_s = _DRAIN_QUIET_S
    if run.rocket is not None:
        quiet_s = max(quiet_s, run.settings.rocketmq_invisible_s + _ROCKETMQ_REVIVE_S)
    deadline = time.monotonic() + _DRAIN_TIMEOUT_S + quiet_s - _DRAIN_QUIET_S
    quiet_since: float | None = None
    previous: Copies | None = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Unavailable, TimeoutError):
            states = await queue_states(run.settings, _consumer_pids(run))
            async with open_archive(run.settings) as archive:
                mysql = await mysql_copies(archive, keys)
            empty = all(s.ready == 0 for s in states.values())
            if empty and not before_repair(ledger, keys, mysql).lost:
                return True
            now = time.monotonic()
            if not empty or mysql != previous:
                quiet_since = now
            elif quiet_since is not None and now - quiet_since >= quiet_s:
                return True
            previous = mysql
        await asyncio.sleep(0.5)
    return False


async def _restore(run: Run, result: RoundResult, untouched: set[int], mysql: Copies) -> int:
    """The forms untouched since the wipe: gone from Redis (proof of the wipe), then back as
    MySQL holds them, half read through the API (a Redis miss falls back to MySQL and refills
    Redis), half reloaded by ``volreg warmup``. (MySQL's copy was judged before: the newest
    acknowledged save, or a later attempt whose confirm came after the API gave up.) Returns
    the forms that did not come back right."""
    forms = sorted(untouched)
    keys = [run.keys[f] for f in forms]
    async with open_index(run.settings, names_of(run.settings)) as index:
        before = await redis_copies(index, keys)
    result.proof["wiped_forms"] = len(forms) - len(before)
    if not forms or before:
        result.problems.append(
            f"{len(before)} of {len(forms)} untouched forms were still in Redis after the wipe"
        )
    wrong: dict[int, str] = {}
    retried = 0
    for form in forms[::2]:
        got = await run.load.read(form)
        for _ in range(_READ_RETRIES):
            if isinstance(got, tuple) or got.startswith("404"):
                break  # an answer (a wrong one counts), not a refusal or a time-out
            retried += 1
            await asyncio.sleep(1)
            got = await run.load.read(form)
        if got != _stamp(mysql.get(run.keys[form])):
            wrong[form] = f"API read {got}, MySQL holds {_stamp(mysql.get(run.keys[form]))}"
    if not await _command(run.settings, "warmup"):
        result.problems.append("volreg warmup failed")
    async with open_index(run.settings, names_of(run.settings)) as index:
        after = await redis_copies(index, keys)
    for form, key in zip(forms, keys, strict=True):
        stored, expected = _stamp(after.get(key)), _stamp(mysql.get(key))
        if (stored is None or stored != expected) and form not in wrong:
            wrong[form] = f"Redis holds {stored}, MySQL {expected}"
    result.proof["reads_retried"] = retried
    result.proof["restore_errors"] = [f"form {f}: {why}" for f, why in sorted(wrong.items())][:10]
    return len(wrong)


def _stamp(copy: FormRecord | None) -> tuple[int, int] | None:
    """(version, salt): which save a stored copy is."""
    return None if copy is None else (copy.version, salt_of(copy.payload))


async def _converge(run: Run, result: RoundResult) -> Check:
    """Reconcile (a separate process, like cron would), then check both stores; again while
    a late message still changes something, up to a limit."""
    verdict: Check | None = None
    for _ in range(_CONVERGE_ATTEMPTS):
        report = await _reconcile_once(run.settings)
        result.reconcile_runs += 1
        repaired = int(report.get("repaired_redis", 0)) + int(report.get("repaired_mysql", 0))
        result.repaired_redis += int(report.get("repaired_redis", 0))
        result.repaired_mysql += int(report.get("repaired_mysql", 0))
        try:
            async with (
                open_archive(run.settings) as archive,
                open_index(run.settings, names_of(run.settings)) as index,
            ):
                mysql = await mysql_copies(archive, run.keys)
                redis = await redis_copies(index, run.keys)
        except Unavailable:
            await asyncio.sleep(1)
            continue
        previous, verdict = verdict, check(run.load.ledger, run.keys, mysql, redis)
        if verdict.clean or (report and repaired == 0 and verdict == previous):
            return verdict  # clean, or nothing left that a repair would change
        await asyncio.sleep(1)
    if verdict is None:
        raise RuntimeError("the stores never answered after the round")
    return verdict


async def _reconcile_once(settings: Settings) -> dict[str, Any]:
    out = await _command(settings, "reconcile", "--once", "--full")
    lines = (out or "").strip().splitlines()
    try:
        report: dict[str, Any] = orjson.loads(lines[-1]) if lines else {}
    except orjson.JSONDecodeError:
        return {}
    return report


async def _command(settings: Settings, *argv: str) -> str | None:
    """``volreg ARGV`` in a new process; its output, or None when it failed to run. (A
    reconcile that found drift exits 1 and still reports.)"""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.main.cli",
        *argv,
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
        return None
    return out.decode() if proc.returncode in (0, 1) else None


# --- Sabotage: the harness's self-test. Each kind damages the stores behind the service's
# back the way a real fault would; a run with it must fail.


async def _drop_messages(run: Run, spare: set[int]) -> int:
    """Confirmed saves vanish from the broker: consumers stopped (cleanly), one save of
    each of a few forms acknowledged, every waiting form message purged, consumers back."""
    for member in run.fleet.consumers:
        await member.stop()
    forms = [f for f in sorted(newest_acks(run.load.ledger)) if f not in spare]
    saved = 0
    for form in forms[-_SABOTAGE_FORMS:]:  # delete-row takes the first forms
        saved += await run.load.save_once(form)
    dropped = await purge_form_queues(run.settings)
    for member in run.fleet.consumers:
        await member.start()
    return dropped if saved else 0


async def _sabotage_rows(
    run: Run, result: RoundResult, sabotage: list[str], spare: set[int]
) -> None:
    """After the drain: delete the rows of a few forms, or put an older acknowledged
    content under a form's current version (forms of the round's checks left alone)."""
    if not sabotage:
        return
    newest = newest_acks(run.load.ledger)
    by_form: dict[int, list[Any]] = {}
    for ack in run.load.ledger.acked:
        by_form.setdefault(ack.form, []).append(ack)
    candidates = [f for f in sorted(newest) if f not in spare]
    database = run.settings.mysql_dsn.rsplit("/", 1)[-1]
    if "delete-row" in sabotage:
        victims = candidates[:_SABOTAGE_FORMS]
        candidates = candidates[_SABOTAGE_FORMS:]
        for form in victims:
            key = run.keys[form]
            await run.cluster.mariadb.as_root(
                f"DELETE FROM {database}.forms WHERE candidate_id = '{key.candidate_id}' "
                f"AND batch_code = '{key.batch}'"
            )
        result.sabotaged["delete-row"] = len(victims)
    if "stale-content" in sabotage:
        victims = [f for f in candidates if len(by_form[f]) >= 2][:_SABOTAGE_FORMS]
        for form in victims:
            key, older = run.keys[form], by_form[form][-2]
            payload = codec.pack(choices_for(form, older.salt)).hex()
            await run.cluster.mariadb.as_root(
                f"UPDATE {database}.forms SET choices = X'{payload}' "
                f"WHERE candidate_id = '{key.candidate_id}' AND batch_code = '{key.batch}'"
            )
        result.sabotaged["stale-content"] = len(victims)


def _summary(rounds: list[RoundResult], run: Run, seconds: float) -> dict[str, Any]:
    ledger, args, totals = run.load.ledger, run.args, run.totals
    summary: dict[str, Any] = {
        "acked": len(ledger.acked),
        "lost": len(totals.lost),
        "lost_before_repair": len(totals.lost_before_repair),
        "mismatched": len(totals.mismatched),
        "content_mismatched": len(totals.content),
        "dead_lettered": sum(r.dead_lettered for r in rounds),
        "restore_failed": sum(r.restore_failed for r in rounds),
        "order_errors": max(r.order_errors for r in rounds),
        "not_injected": sum(not r.injected for r in rounds),
        "problems": [f"round {r.round} ({r.fault}): {p}" for r in rounds for p in r.problems],
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
            "faults": args.faults or ",".join(faults_for(args.broker)),
            "broker": args.broker,
            "sabotage": args.sabotage or "",
            "seed": args.seed,
        },
        "command": "volreg " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "seconds": round(seconds, 1),
        "finished_at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    summary["passed"] = not any(r.failed for r in rounds)
    return summary


def _as_dict(r: RoundResult) -> dict[str, Any]:
    out = asdict(r)
    out["passed"] = not r.failed
    return out


def _totals(summary: dict[str, Any]) -> dict[str, Any]:
    names = ("passed", "acked", "lost", "lost_before_repair", "mismatched", "content_mismatched")
    return {k: summary[k] for k in (*names, "dead_lettered", "not_injected")}
