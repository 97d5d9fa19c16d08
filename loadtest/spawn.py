"""``--spawn N``: start an API (N workers, naive route on) and a consumer for the run, on a
free loopback port with the caller's ``VOLREG_*`` settings, and stop them afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

from service.http import urls

_READY_WAIT_S = 60.0
_STOP_WAIT_S = 20.0


@dataclass(frozen=True, slots=True)
class Deployment:
    url: str
    api_pid: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _start(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C in the terminal reaches us, we stop them in order
    )


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(_STOP_WAIT_S):
            await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def wait_ready(url: str, procs: list[asyncio.subprocess.Process]) -> None:
    timeout = aiohttp.ClientTimeout(total=2)
    async with asyncio.timeout(_READY_WAIT_S), aiohttp.ClientSession(timeout=timeout) as http:
        while True:
            for p in procs:
                if p.returncode is not None:
                    raise RuntimeError(f"a spawned volreg process exited with {p.returncode}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url + urls.READY) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.2)


@asynccontextmanager
async def spawned(workers: int) -> AsyncIterator[Deployment]:
    port = free_port()
    env = dict(os.environ, VOLREG_HTTP_HOST="127.0.0.1", VOLREG_HTTP_PORT=str(port))
    api = await _start("serve", "--workers", str(workers), "--naive", env=env)
    consumer = await _start("consume", env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, [api, consumer])
        yield Deployment(url, api.pid)
    finally:
        await _stop(api)  # the API first, so the consumer drains what it accepted
        await _stop(consumer)
