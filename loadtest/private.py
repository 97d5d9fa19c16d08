"""Run a command (a load test) against private Redis, RabbitMQ and MariaDB servers of its own.

On a machine shared with other work the servers' CPU per request counts only this run's
requests when nobody else uses them. ``python -m loadtest.private [--candidates N] --
volreg loadtest --spawn 1 ...`` starts the servers (the chaos harness's, on spare loopback
ports, data in a temporary directory), migrates, imports N demo candidates, publishes the demo
batch and catalogue (institutions 10001-10020, majors 080901-080910), runs the command with
``VOLREG_*`` pointing at them (``--candidates-csv`` added for a load test; a script finds the
file in ``BENCH_CANDIDATES_CSV``), then stops them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from loadtest.cluster_local import LocalCluster
from schemas.http import InstitutionBody, MajorBody
from service.catalogue.mysql import CatalogueTables
from service.core.ports import Batch
from service.core.settings import Settings
from service.storage.mysql_migrate import migrate
from service.storage.mysql_parts import open_database

BATCH = "undergrad-1"
_INSTITUTIONS = range(10001, 10021)
_MAJORS = range(80901, 80911)


def _env(cluster: LocalCluster, secret: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLREG_")}
    env.update(
        VOLREG_REDIS_URL=cluster.redis.url,
        VOLREG_AMQP_URL=cluster.rabbit.url,
        VOLREG_MYSQL_DSN=cluster.mariadb.dsn("volreg"),
        VOLREG_TOKEN_SECRET=secret,
        VOLREG_ENV_FILE=os.devnull,  # not the checkout's servers
        VOLREG_LOG_LEVEL="WARNING",
    )
    return env


async def _volreg(env: dict[str, str], *args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.main.cli", *args, env=env, stdout=asyncio.subprocess.DEVNULL
    )
    if await proc.wait() != 0:
        raise RuntimeError(f"volreg {' '.join(args)} failed ({proc.returncode})")


async def _seed(settings: Settings, env: dict[str, str], csv: Path, candidates: int) -> None:
    await migrate(settings)
    await _volreg(env, "gen-data", "--candidates", str(candidates), "--out", str(csv))
    await _volreg(env, "import", str(csv))
    now = datetime.now()
    async with open_database(settings) as db:
        await db.upsert_batch(
            Batch(BATCH, "Undergraduate, first", now - timedelta(days=1), now + timedelta(days=30))
        )
        tables = CatalogueTables(db)
        majors = [MajorBody(code=f"{m:06d}", name=f"Major {m:06d}") for m in _MAJORS]
        for code in _INSTITUTIONS:
            await tables.put_institution(
                str(code), InstitutionBody(name=f"University {code}", majors=majors)
            )


async def _run(command: list[str], candidates: int, keep: bool) -> int:
    root = Path(tempfile.mkdtemp(prefix="volreg-bench-"))
    cluster = LocalCluster(root)
    try:
        print(f"private servers under {root}", file=sys.stderr)
        await cluster.start()
        secret = secrets.token_hex(16)
        env = _env(cluster, secret)
        settings = Settings.from_env(env)
        csv = root / "candidates.csv"
        await _seed(settings, env, csv, candidates)
        if "loadtest" in command and "--candidates-csv" not in command:
            command = [*command, "--candidates-csv", str(csv)]
        # For a script that runs several load tests itself.
        env["BENCH_CANDIDATES_CSV"] = str(csv)
        proc = await asyncio.create_subprocess_exec(*command, env=env)
        return await proc.wait()
    finally:
        await cluster.stop()
        if keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.private", description=__doc__)
    p.add_argument("--candidates", type=int, default=1000, help="demo candidates to import")
    p.add_argument("--keep", action="store_true", help="keep the servers' data and logs")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("give the command to run after --")
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_run(command, args.candidates, args.keep))
    return 130


if __name__ == "__main__":
    sys.exit(main())
