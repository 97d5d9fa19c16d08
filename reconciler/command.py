"""The ``reconcile`` and ``warmup`` subcommands of ``volreg``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

import orjson
from tqdm import tqdm

from reconciler.model import MODE_FULL, MODE_INCREMENTAL, OUTCOME_FAILED, OUTCOME_OK
from reconciler.run import LockBusy, Reconciler
from service.core.errors import Unavailable
from service.core.settings import Settings

T = TypeVar("T")
EXIT_DRIFT = 1  # unrepaired drift remains
EXIT_FAILED = 2  # a dependency failed mid-run
EXIT_BUSY = 75  # another run holds the lock (EX_TEMPFAIL): try again later


def add_reconcile(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "reconcile",
        help="compare Redis and MySQL per form and repair drift (scheduled, or --once)",
    )
    p.add_argument("--once", action="store_true", help="one run, then exit (for cron)")
    p.add_argument("--full", action="store_true", help="with --once: sweep every form")
    p.add_argument("--shard", type=int, help="with --once: only this shard")
    p.set_defaults(run=_reconcile)


def add_warmup(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("warmup", help="reload Redis from MySQL (after Redis lost its data)")
    p.add_argument("--batch", type=int, help="forms per pipeline (default VOLREG_WARMUP_BATCH)")
    p.add_argument("--writers", type=int, default=2, help="pipelines in flight")
    p.set_defaults(run=_warmup)


def _reconcile(settings: Settings, args: argparse.Namespace) -> int:
    if args.shard is not None and not 0 <= args.shard < settings.shards:
        print(f"--shard must be 0..{settings.shards - 1}", file=sys.stderr)
        return 2
    if not args.once:
        if args.full or args.shard is not None:
            print("--full and --shard go with --once", file=sys.stderr)
            return 2
        import uvloop

        from reconciler.schedule import serve_forever

        uvloop.install()
        asyncio.run(serve_forever(settings))
        return 0
    mode = MODE_FULL if args.full else MODE_INCREMENTAL
    return asyncio.run(reconcile_once(settings, mode, args.shard))


async def reconcile_once(settings: Settings, mode: str, shard: int | None) -> int:
    """One run; prints its report as JSON. The exit code says whether drift remains."""
    from reconciler.wiring import open_sides

    async with open_sides(settings) as (redis, db):
        reconciler = Reconciler(redis, db, settings)
        try:
            report = await _with_progress(reconciler, reconciler.run(mode, shard))
        except LockBusy:
            print("another reconcile run holds the lock; try again later", file=sys.stderr)
            return EXIT_BUSY
        except Unavailable as exc:
            print(f"reconcile: {exc}", file=sys.stderr)
            return EXIT_FAILED
    print(orjson.dumps(report.to_json()).decode())
    if report.outcome == OUTCOME_OK:
        return 0
    return EXIT_FAILED if report.outcome == OUTCOME_FAILED else EXIT_DRIFT


async def _with_progress(reconciler: Reconciler, run: Awaitable[T]) -> T:
    """Await ``run`` with a bar of the shards done on the terminal (none when stderr is not
    one: cron mail and logs get the report only)."""
    task = asyncio.ensure_future(run)
    terminal = sys.stderr.isatty()
    with tqdm(desc="reconcile", unit="shard", file=sys.stderr, disable=not terminal) as bar:
        while not task.done():
            await asyncio.wait({task}, timeout=0.5)
            progress = reconciler.progress
            if progress.shards_total and bar.total != progress.shards_total:
                bar.reset(total=progress.shards_total)
            bar.n = progress.shards_done
            bar.refresh()
    return task.result()


def _warmup(settings: Settings, args: argparse.Namespace) -> int:
    from reconciler.warmup import warm_up
    from reconciler.wiring import open_sides

    async def run() -> int:
        async with open_sides(settings) as (redis, db):
            try:
                total = await db.count_forms()
                with tqdm(total=total, desc="warmup", unit="form", file=sys.stderr) as bar:
                    page = args.batch or settings.warmup_batch
                    report = await warm_up(db, redis, page, bar.update, args.writers)
            except Unavailable as exc:
                print(f"warmup: {exc}", file=sys.stderr)
                return EXIT_FAILED
        print(
            f"warm-up: {report.forms} forms in {report.seconds:.1f} s "
            f"({report.per_second:,.0f}/s), {report.applied} written, "
            f"{report.forms - report.applied} already current"
        )
        return 0

    return asyncio.run(run())
