"""Processes the harnesses start themselves (servers, API servers, consumers): each in a session
of its own, so that a signal reaches it and its children alone, stopped by its PID, and polled
until it answers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path


async def port_open(port: int) -> bool:
    """Something accepts connections on the loopback port."""
    try:
        async with asyncio.timeout(1):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class Child:
    """One process we started (``spawn``); ``kill``/``stop`` signal its whole process group."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        """The process (group leader) while it runs."""
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        """Started by us and not exited: a kill of it is a real fault."""
        if self._proc is None or self._proc.returncode is not None:
            return False
        try:
            os.kill(self._proc.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def exited(self) -> bool:
        return self._proc is None or self._proc.returncode is not None

    async def spawn(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        log: Path,
        cwd: Path | None = None,
    ) -> None:
        with log.open("ab") as out:
            self._proc = await asyncio.create_subprocess_exec(
                *argv,
                env=dict(env),
                cwd=cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )

    async def wait_until(
        self, ready: Callable[[], Awaitable[bool]], timeout_s: float, what: str
    ) -> None:
        """Poll ``ready`` until it holds; RuntimeError (``what`` in it) when the process
        exits first or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while not await ready():
            if self.exited():
                raise RuntimeError(f"{what}: exited")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: not ready after {timeout_s:.0f} s")
            await asyncio.sleep(0.1)

    async def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown, no flush."""
        await self._signal(signal.SIGKILL, 10)

    async def stop(self) -> None:
        await self._signal(signal.SIGTERM, 30)

    async def _signal(self, sig: signal.Signals, wait_s: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        # The group, not just its leader: children (beam.smp, workers) may outlive it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            async with asyncio.timeout(wait_s):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        await self.after_exit(proc.pid, wait_s)

    async def after_exit(self, pgid: int, wait_s: float) -> None:
        """Called once the group leader has exited (servers wait for their port to close)."""
