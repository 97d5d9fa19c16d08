"""volreg commands run as processes of their own by the tests (the real entry points, on free
loopback ports), and plain HTTP requests to them."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time

import aiohttp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    # A new connection per request, so that SO_REUSEPORT spreads them over the workers.
    connector = aiohttp.TCPConnector(force_close=True)
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as http,
        http.get(url, headers=headers) as resp,
    ):
        return resp.status, await resp.text()


async def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"the process exited with {proc.returncode}"
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            if (await get(url))[0] == 200:
                return
        assert time.monotonic() < deadline, f"{url} did not answer"
        await asyncio.sleep(0.2)


def start(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "service.main.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=10)
