"""``volreg loadtest``: arguments, the run, the files written and the terminal summary."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shlex
import sys
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from loadtest import inproc, plots, report
from loadtest.client import PrepError
from loadtest.run import Options, run
from loadtest.scenarios import parse_names
from loadtest.spawn import Deployment, SpawnError, spawned
from loadtest.wrk import WrkError
from service.core.settings import Settings


def add_arguments(p: argparse.ArgumentParser) -> None:
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="a running deployment, e.g. http://127.0.0.1:8080")
    target.add_argument(
        "--spawn",
        type=int,
        metavar="WORKERS",
        help="start an API with this many workers (naive route on) and a consumer for the run",
    )
    target.add_argument(
        "--in-process",
        action="store_true",
        help="no HTTP: time the save path's steps in this process, redis-py's pool against "
        "the multiplexed connection (CPU per operation)",
    )
    p.add_argument(
        "--broker",
        choices=["rabbitmq", "rocketmq"],
        help="with --spawn: the form broker of the processes it starts (default: VOLREG_BROKER)",
    )
    p.add_argument("--rounds", type=int, default=3, help="--in-process: alternating rounds")
    p.add_argument("--ops", type=int, default=4000, help="--in-process: operations per step")
    p.add_argument(
        "--scenarios",
        default="all",
        help="comma-separated: ceiling,exam,form,save,mixed,naive (default: all)",
    )
    p.add_argument("--duration", type=int, default=10, help="seconds of load per scenario")
    p.add_argument(
        "--slice",
        type=int,
        default=2,
        help="seconds per wrk run: the time resolution of the plots (each run restarts wrk)",
    )
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="wrk threads")
    p.add_argument("--candidates", type=int, default=300, help="candidates to log in")
    p.add_argument("--candidates-csv", type=Path, default=Path("var/demo/candidates.csv"))
    p.add_argument("--password", default="demo-password")
    p.add_argument("--batch", default="undergrad-1", help="an admission batch open for filing")
    p.add_argument("--out", type=Path, help="report folder (default reports/loadtest-<time>)")
    p.add_argument("--json", type=Path, help="JSON report path (default <out>/loadtest.json)")
    p.add_argument("--catch-up-timeout", type=float, default=60.0)
    p.add_argument("--request-timeout", type=float, default=5.0)
    p.add_argument(
        "--save-limit",
        type=int,
        default=0,
        help="with --spawn: saves per candidate per minute the spawned API allows (default 0: "
        "no limit; hot candidates save far faster than a person). With --url: the target's "
        "setting, for the report",
    )
    p.add_argument(
        "--api-pid", type=int, help="with --url: the API's PID, to report its CPU per request"
    )
    p.add_argument("--consumer-pid", type=int, help="with --url: the consumer's PID, likewise")
    p.add_argument(
        "--open-loop",
        default="",
        metavar="RATES",
        help="after the scenarios, saves at these fixed arrival rates (e.g. 500,1000,2000), "
        "latency from each request's intended send time",
    )
    p.add_argument(
        "--open-loop-duration", type=float, default=10.0, help="seconds per open-loop rate"
    )
    p.add_argument(
        "--profile",
        metavar="SCENARIO",
        help="with --spawn: record this scenario's API with py-spy (flame graph SVG)",
    )


def _options(
    args: argparse.Namespace, url: str, deployment: Deployment | None, out: Path
) -> Options:
    return Options(
        url=url.rstrip("/"),
        scenarios=parse_names(args.scenarios),
        duration_s=args.duration,
        slice_s=min(args.slice, args.duration),
        connections=args.connections,
        threads=args.threads,
        candidates=args.candidates,
        candidates_csv=args.candidates_csv,
        password=args.password,
        batch=args.batch,
        out_dir=out,
        catch_up_timeout_s=args.catch_up_timeout,
        request_timeout_s=args.request_timeout,
        profile=args.profile,
        api_pid=deployment.api_pid if deployment else args.api_pid,
        consumer_pid=deployment.consumer_pid if deployment else args.consumer_pid,
        consumer_metrics_url=deployment.consumer_metrics_url if deployment else None,
        metrics_token=deployment.metrics_token if deployment else None,
        open_loop_rates=_rates(args.open_loop),
        open_loop_duration_s=args.open_loop_duration,
        save_limit=args.save_limit,
    )


def _rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(r) for r in text.split(",") if r.strip())
    except ValueError:
        raise ValueError(f"--open-loop: expected rates like 500,1000,2000, got {text!r}") from None
    if any(r <= 0 for r in rates):
        raise ValueError("--open-loop: rates must be positive")
    return rates


async def _measure(settings: Settings, args: argparse.Namespace, out: Path) -> tuple[Options, Any]:
    async with AsyncExitStack() as stack:
        url, deployment = args.url, None
        if args.spawn:
            if args.broker:
                settings = dataclasses.replace(settings, broker=args.broker)
            deployment = await stack.enter_async_context(
                spawned(args.spawn, out, args.save_limit, args.broker)
            )
            url = deployment.url
        options = _options(args, url, deployment, out)
        return options, await run(options, settings)


def _in_process(settings: Settings, args: argparse.Namespace) -> int:
    result = asyncio.run(
        inproc.compare(settings, args.candidates_csv, args.batch, args.ops, args.rounds)
    )
    if args.json:
        report.write_json(result, args.json)
    print("\n".join(inproc.table(result)))
    return 0


def main(settings: Settings, args: argparse.Namespace) -> int:
    for name in ("duration", "slice", "connections", "threads", "candidates"):
        if getattr(args, name) < 1:
            print(f"--{name.replace('_', '-')} must be at least 1", file=sys.stderr)
            return 2
    try:
        parse_names(args.scenarios)
        _rates(args.open_loop)
        if not 0 < args.open_loop_duration <= 600:
            raise ValueError("--open-loop-duration must be within (0, 600] seconds")
        if args.profile and not args.spawn:
            raise ValueError("--profile needs --spawn (it records the API this run starts)")
        if args.broker and not args.spawn:
            raise ValueError("--broker needs --spawn (the broker of the processes it starts)")
        if args.in_process:
            return _in_process(settings, args)
        out = args.out or Path("reports") / f"loadtest-{datetime.now():%Y%m%d-%H%M%S}"
        out.mkdir(parents=True, exist_ok=True)
        options, measured = asyncio.run(_measure(settings, args, out))
    except (ValueError, PrepError, WrkError, SpawnError) as exc:
        print(f"volreg loadtest: {exc}", file=sys.stderr)
        return 2
    except (aiohttp.ClientError, TimeoutError) as exc:
        reason = str(exc) or "timed out"
        print(f"volreg loadtest: the deployment did not answer: {reason}", file=sys.stderr)
        return 2
    full = report.complete(measured)
    json_path = args.json or options.out_dir / "loadtest.json"
    report.write_json(full, json_path)
    images = plots.plot_all(full, options.out_dir) if plots.available() else []
    if not plots.available():
        print(plots.INSTALL_HINT, file=sys.stderr)
    command = "volreg " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "volreg loadtest"
    md = options.out_dir / "report.md"
    md.write_text(report.markdown(full, command, images))
    print("\n".join(report.scenario_table(full)))
    print("\n".join(["", *report.cpu_table(full)]))
    if full.get("open_loop"):
        print("\n".join(["", *report.open_loop_table(full)]))
    print(f"\nratios: {report.ratio_line(full)}")
    missed = [t["name"] for t in full["targets"] if t["met"] is False]
    print(f"targets missed: {', '.join(missed)}" if missed else "targets: none missed")
    print(f"report: {md}  json: {json_path}")
    return 0
