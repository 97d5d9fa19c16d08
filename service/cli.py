"""The ``volreg`` command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from pathlib import Path

from tqdm import tqdm

from service.logs import configure
from service.settings import Settings


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from service.adapters.mysql_migrate import migrate

    applied = asyncio.run(migrate(settings))
    print(f"migrations applied: {', '.join(applied) if applied else 'none pending'}")
    return 0


def _gen_data(_settings: Settings, args: argparse.Namespace) -> int:
    from service.gendata import write_candidates

    write_candidates(Path(args.out), args.candidates, args.schools, args.seed)
    print(f"wrote {args.candidates} candidates to {args.out}")
    return 0


def _import(settings: Settings, args: argparse.Namespace) -> int:
    from service.adapters.mysql_db import open_database
    from service.adapters.redis_cache import open_cache
    from service.http.app import names_of
    from service.importer import import_candidates

    async def run() -> int:
        async with open_database(settings) as db, open_cache(settings, names_of(settings)) as c:
            with tqdm(desc="import", unit="row", file=sys.stderr) as bar:
                report = await import_candidates(Path(args.file), db, c, bar.update)
        print(f"rows {report.rows}, imported {report.imported}, rejected {len(report.rejected)}")
        for line, reason in report.rejected[:20]:
            print(f"  line {line}: {reason}")
        return 1 if report.rejected else 0

    return asyncio.run(run())


def _batch(settings: Settings, args: argparse.Namespace) -> int:
    from service.adapters.mysql_db import open_database
    from service.ports import Batch

    batch = Batch(args.code, args.name or args.code, args.opens, args.closes)
    if batch.closes_at <= batch.opens_at:
        print("--closes must be after --opens", file=sys.stderr)
        return 2

    async def run() -> None:
        async with open_database(settings) as db:
            await db.upsert_batch(batch)

    asyncio.run(run())
    print(f"batch {batch.code}: open {batch.opens_at.isoformat()} .. {batch.closes_at.isoformat()}")
    return 0


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from service.runner import serve

    serve(settings, args.workers)
    return 0


def _consume(settings: Settings, _args: argparse.Namespace) -> int:
    from service.runner import consume

    consume(settings)
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="volreg", description="College-application registration service (see README)."
    )
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the HTTP API")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    p.set_defaults(run=_serve)

    sub.add_parser("consume", help="persist saved forms from the broker to MySQL").set_defaults(
        run=_consume
    )
    sub.add_parser("migrate", help="create/upgrade the MySQL schema").set_defaults(run=_migrate)

    p = sub.add_parser("gen-data", help="write a synthetic candidates CSV (or .csv.gz)")
    p.add_argument("--candidates", type=int, default=10_000)
    p.add_argument("--schools", type=int, default=200)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", required=True)
    p.set_defaults(run=_gen_data)

    p = sub.add_parser("import", help="load candidates with exam results from CSV (or .csv.gz)")
    p.add_argument("file")
    p.set_defaults(run=_import)

    p = sub.add_parser("batch", help="create or change an admission batch and its filing window")
    p.add_argument("code")
    p.add_argument("--name")
    p.add_argument("--opens", type=datetime.fromisoformat, required=True)
    p.add_argument("--closes", type=datetime.fromisoformat, required=True)
    p.set_defaults(run=_batch)

    from loadtest.chaos_command import add_chaos
    from reconciler.command import add_reconcile, add_warmup

    add_reconcile(sub)
    add_warmup(sub)
    add_chaos(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"volreg: {exc}", file=sys.stderr)
        return 2
    configure(settings.log_level)
    code: int = args.run(settings, args)
    return code


if __name__ == "__main__":
    sys.exit(main())
