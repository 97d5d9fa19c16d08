"""``--spawn N``: start an API (N workers, naive route on) and a consumer for the run, on a
free loopback port with the caller's ``VOLREG_*`` settings, and stop them afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from schemas import urls

_READY_WAIT_S = 60.0
_STOP_WAIT_S = 20.0


@dataclass(frozen=True, slots=True)
class Deployment:
    url: str
    api_pid: int
    consumer_pid: int | None = None
    consumer_metrics_url: str | None = None
    metrics_token: str | None = None  # what /metrics wants (VOLREG_METRICS_TOKEN)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _start(*args: str, env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "service.main.cli",
            *args,
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,  # a Ctrl-C reaches only us; we stop them in order
        )


async def stop(
    proc: asyncio.subprocess.Process, wait_s: float = _STOP_WAIT_S, terminate: bool = True
) -> None:
    """SIGTERM (unless it stops by itself), give it ``wait_s`` to exit, then kill it."""
    if proc.returncode is not None:
        return
    if terminate:
        proc.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(wait_s):
            await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def wait_ready(url: str, procs: list[asyncio.subprocess.Process], logs: str = "") -> None:
    timeout = aiohttp.ClientTimeout(total=2)
    async with asyncio.timeout(_READY_WAIT_S), aiohttp.ClientSession(timeout=timeout) as http:
        while True:
            for p in procs:
                if p.returncode is not None:
                    raise SpawnError(f"a spawned volreg process exited with {p.returncode}{logs}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url + urls.READY) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.2)


class SpawnError(RuntimeError):
    """A process this run started did not come up."""


@asynccontextmanager
async def spawned(
    workers: int, log_dir: Path, save_limit: int = 0, broker: str | None = None
) -> AsyncIterator[Deployment]:
    """The processes log to ``api.log`` and ``consumer.log`` in ``log_dir`` (which exists).
    ``save_limit`` is the API's saves per candidate per minute, set explicitly (0: none);
    ``broker`` overrides their ``VOLREG_BROKER``."""
    port, consumer_port = free_port(), free_port()
    env = dict(
        os.environ,
        VOLREG_HTTP_HOST="127.0.0.1",
        VOLREG_HTTP_PORT=str(port),
        VOLREG_SAVE_RATE_LIMIT=str(save_limit),
        VOLREG_SAVE_RATE_WINDOW_S="60",
        VOLREG_CONSUMER_HTTP_PORT=str(consumer_port),
    )
    if broker is not None:
        env["VOLREG_BROKER"] = broker
    # The report reads the API's /metrics (group commit, confirms): a scrape token of the run's.
    env.setdefault("VOLREG_METRICS_TOKEN", secrets.token_hex(32))
    api_log, consumer_log = log_dir / "api.log", log_dir / "consumer.log"
    api = await _start("serve", "--workers", str(workers), "--naive", env=env, log=api_log)
    consumer = await _start("consume", env=env, log=consumer_log)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, [api, consumer], f"; see {api_log} and {consumer_log}")
        yield Deployment(
            url,
            api.pid,
            consumer.pid,
            f"http://127.0.0.1:{consumer_port}{urls.METRICS}",
            env["VOLREG_METRICS_TOKEN"],
        )
    finally:
        await stop(api)  # the API first, so the consumer drains what it accepted
        await stop(consumer)
