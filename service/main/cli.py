"""The ``volreg`` command line."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from service.core.logs import configure
from service.core.settings import Settings, environment
from service.core.settings_rules import SettingsError
from service.main.cli_help import describe, version


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from service.storage.mysql_migrate import migrate

    applied = asyncio.run(migrate(settings, reshard=args.reshard))
    print(f"migrations applied: {', '.join(applied) if applied else 'none pending'}")
    return 0


def _gen_data(_settings: Settings, args: argparse.Namespace) -> int:
    from service.imports.gendata import write_candidates, write_teachers

    write_candidates(Path(args.out), args.candidates, args.schools, args.seed)
    print(f"wrote {args.candidates} candidates to {args.out}")
    if args.teachers_out:
        write_teachers(Path(args.teachers_out), args.schools, args.seed)
        print(f"wrote {2 * args.schools} teachers to {args.teachers_out}")
    return 0


def _import(settings: Settings, args: argparse.Namespace) -> int:
    from service.core.names import names_of
    from service.main.import_file import import_file

    path = Path(args.file)
    try:
        total = path.stat().st_size
    except OSError as exc:
        print(f"volreg import: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(import_file(settings, names_of(settings), path, total, args.fresh, args.job))


def _admin(settings: Settings, args: argparse.Namespace) -> int:
    import getpass
    import os

    from service.main.wiring import create_staff_account

    password = os.environ.get("VOLREG_NEW_PASSWORD") or getpass.getpass(
        f"password for {args.username}: "
    )
    try:
        asyncio.run(create_staff_account(settings, args.username, args.role, args.school, password))
    except ValueError as exc:
        print(f"volreg admin: {exc}", file=sys.stderr)
        return 2
    print(f"{args.role} {args.username}: saved")
    return 0


def _batch(settings: Settings, args: argparse.Namespace) -> int:
    from service.core.ports import Batch
    from service.main.wiring import save_batch

    batch = Batch(args.code, args.name or args.code, args.opens, args.closes, not args.final_submit)
    if batch.closes_at <= batch.opens_at:
        print("--closes must be after --opens", file=sys.stderr)
        return 2
    # API processes cache the catalogue: save_batch refreshes Redis and tells them.
    asyncio.run(save_batch(settings, batch))
    print(f"batch {batch.code}: open {batch.opens_at.isoformat()} .. {batch.closes_at.isoformat()}")
    return 0


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from service.main.runner import serve

    if args.naive:
        settings = dataclasses.replace(settings, bench_naive=True)
    return serve(settings, args.workers)


# Subcommands of the tools in loadtest/ (a checkout's, not the wheel's): their modules are
# imported only when one of them is run.
TOOLS = {
    "loadtest": "benchmark a deployment with wrk (report, ratios, plots)",
    "chaos": "kill -9 and restart private Redis/RabbitMQ (or RocketMQ)/MariaDB/API/consumer "
    "under load; verify no acknowledged save is lost",
}


def _loadtest(settings: Settings, args: argparse.Namespace) -> int:
    from loadtest.command import main as loadtest

    return loadtest(settings, args)


def _tools() -> tuple[Callable[[argparse.ArgumentParser], None], Callable[[Any], None]]:
    try:
        from loadtest.chaos_command import add_chaos
        from loadtest.command import add_arguments
    except ImportError as exc:
        raise SystemExit(f"volreg: {exc}: the load-test tools run from a checkout") from None
    return add_arguments, add_chaos


def _status(settings: Settings, _args: argparse.Namespace) -> int:
    from service.main.status import status

    code, screen = asyncio.run(status(settings))
    print(screen)
    return code


def _consume(settings: Settings, _args: argparse.Namespace) -> int:
    from service.main.runner import consume

    consume(settings)
    return 0


def _hot(settings: Settings, _args: argparse.Namespace) -> int:
    from service.main.runner import aggregate_hot

    aggregate_hot(settings)
    return 0


def parser(tools: bool = False, settings: Settings | None = None) -> argparse.ArgumentParser:
    """With ``tools`` the loadtest and chaos subcommands are complete; without, they are
    only listed (``main`` asks for them when one of them is run). ``settings`` are the values
    each subcommand's --help shows as in effect."""
    top = argparse.ArgumentParser(
        prog="volreg",
        description="College-application registration service (see README).",
        epilog="`volreg COMMAND --help` for each command's settings and exit codes.",
    )
    top.add_argument("--version", action="version", version=f"volreg {version()}")
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the HTTP API")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    p.add_argument(
        "--naive",
        action="store_true",
        help="benchmark only: also serve the naive save route (MySQL per request)",
    )
    p.set_defaults(run=_serve)

    sub.add_parser("consume", help="persist saved forms from the broker to MySQL").set_defaults(
        run=_consume
    )
    p = sub.add_parser("migrate", help="create/upgrade the MySQL schema, record the shard count")
    p.add_argument(
        "--reshard",
        action="store_true",
        help="accept a VOLREG_SHARDS different from the recorded one (queues drained, "
        "Redis warmed up again afterwards)",
    )
    p.set_defaults(run=_migrate)
    sub.add_parser(
        "hot", help="aggregate hot-item events into Redis and MySQL, push hot keys"
    ).set_defaults(run=_hot)

    p = sub.add_parser("gen-data", help="write a synthetic candidates CSV (or .csv.gz)")
    p.add_argument("--candidates", type=int, default=10_000, help="rows to write")
    p.add_argument("--schools", type=int, default=200, help="schools they are spread over")
    p.add_argument("--seed", type=int, default=7, help="random seed (same seed, same file)")
    p.add_argument("--out", required=True, help="the CSV to write (.gz: compressed)")
    p.add_argument("--teachers-out", help="also write a teachers CSV (two per school)")
    p.set_defaults(run=_gen_data)

    p = sub.add_parser(
        "import",
        help="load candidates with exam results, or teachers, from CSV (or .csv.gz); "
        "an interrupted import of the same file resumes from its checkpoint",
    )
    p.add_argument("file", help="CSV or CSV.gz with the import's header")
    p.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    p.add_argument("--job", help="name the job (to watch it, or to resume it by name)")
    p.set_defaults(run=_import)

    p = sub.add_parser(
        "admin",
        help="create or update a staff account (password from $VOLREG_NEW_PASSWORD or a prompt)",
    )
    p.add_argument("username", help="the login name")
    p.add_argument("--role", choices=("admin", "teacher"), default="admin", help="its role")
    p.add_argument("--school", default="", help="the teacher's school code")
    p.set_defaults(run=_admin)

    p = sub.add_parser("batch", help="create or change an admission batch and its filing window")
    p.add_argument("code", help="the batch code, e.g. undergrad-1")
    p.add_argument("--name", help="its display name (default: the code)")
    p.add_argument("--opens", type=datetime.fromisoformat, required=True, help="ISO time")
    p.add_argument("--closes", type=datetime.fromisoformat, required=True, help="ISO time")
    p.add_argument(
        "--final-submit",
        action="store_true",
        help="a submitted form can no longer be changed while the window is open",
    )
    p.set_defaults(run=_batch)

    sub.add_parser(
        "status", help="one screen: servers, shard count, queues, last reconcile, imports"
    ).set_defaults(run=_status)

    p = sub.add_parser("loadtest", help=TOOLS["loadtest"])
    if tools:
        add_loadtest, add_chaos = _tools()
        add_loadtest(p)
        p.set_defaults(run=_loadtest)

    from reconciler.command import add_reconcile, add_warmup

    add_reconcile(sub)
    add_warmup(sub)
    if tools:
        add_chaos(sub)
    else:
        sub.add_parser("chaos", help=TOOLS["chaos"])
    describe(sub, settings or Settings())
    return top


# Commands that verify bearer tokens (the API; the reconciler's /status needs the admin role).
_SIGNS_TOKENS = {"serve", "reconcile"}
# Commands that work on existing data: they refuse a shard count other than the recorded one
# (serve and consume check it themselves, also when MySQL comes up later).
_SHARD_CHECKED = {"reconcile", "warmup", "import"}


def _check_shards(settings: Settings) -> None:
    from service.core.shard_guard import ShardGuard
    from service.storage.mysql_migrate import check_shard_count

    asyncio.run(ShardGuard(lambda: check_shard_count(settings), 0).first())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--version"]:  # needs no settings
        print(f"volreg {version()}")
        return 0
    # Settings first: --help shows the values in effect, so it validates them too.
    try:
        settings = Settings.from_env(environment())
    except ValueError as exc:
        _refuse(exc)
        return 2
    args = parser(tools=bool(argv) and argv[0] in TOOLS, settings=settings).parse_args(argv)
    configure(settings.log_level)
    if args.command in _SIGNS_TOKENS:
        from service.core.passwords import Passwords
        from service.core.token_keys import check_token_secrets
        from service.http.clients import trusted_networks

        try:
            check_token_secrets(settings)
            trusted_networks(settings.trusted_proxies)
            Passwords(settings.argon2_time_cost, settings.argon2_memory_kib)
        except ValueError as exc:  # WeakSecret is one
            print(f"volreg {args.command}: refusing to start: {exc}", file=sys.stderr)
            return 2
    try:
        if args.command in _SHARD_CHECKED:
            _check_shards(settings)
        code: int = args.run(settings, args)
    except SettingsError as exc:
        _refuse(exc)
        return 2
    return code


def _refuse(exc: ValueError) -> None:
    for line in str(exc).splitlines():
        print(f"volreg: {line}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
