"""The volreg processes of a chaos run: API servers and consumers, each in a session of its
own so that SIGKILL hits it alone, with its log in the run's directory."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp

from loadtest.cluster_local import free_port
from schemas import urls
from service.core.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLREG_")}
    for f in dataclasses.fields(settings):
        env[f"VOLREG_{f.name.upper()}"] = str(getattr(settings, f.name))
    return env


class Member:
    """One ``volreg serve`` or ``volreg consume`` process."""

    def __init__(self, command: str, settings: Settings, log: Path) -> None:
        self.command = command
        self.settings = settings
        self.log = log
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def name(self) -> str:
        if self.command == "serve":
            return f"service :{self.settings.http_port}"
        return f"consumer {self.log.stem}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}"

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "service.main.cli",
                self.command,
                env=settings_env(self.settings),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
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

    async def kill(self) -> None:
        await self._signal(signal.SIGKILL)

    async def stop(self) -> None:
        await self._signal(signal.SIGTERM)

    async def _signal(self, sig: signal.Signals) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            async with asyncio.timeout(30):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    async def wait_ready(self, http: aiohttp.ClientSession, timeout_s: float) -> None:
        """An API is ready when /health/ready says every dependency answers."""
        if self.command != "serve":
            return
        deadline = time.monotonic() + timeout_s
        while True:
            if self._proc is None or self._proc.returncode is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log}")
            try:
                async with http.get(self.base_url + urls.READY) as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready after {timeout_s:.0f} s; see {self.log}")
            await asyncio.sleep(0.2)


class Fleet:
    """API servers (``serving`` settings) and consumers (``consuming``): the harness points
    each at the links its faults act on."""

    def __init__(
        self, serving: Settings, consuming: Settings, root: Path, services: int, consumers: int
    ) -> None:
        self.services = [
            Member(
                "serve",
                dataclasses.replace(serving, http_port=free_port()),
                root / f"serve-{i}.log",
            )
            for i in range(services)
        ]
        self.consumers = [
            Member("consume", consuming, root / f"consumer-{i}.log") for i in range(consumers)
        ]

    @property
    def members(self) -> list[Member]:
        return [*self.services, *self.consumers]

    async def start(self) -> None:
        for member in self.members:
            await member.start()

    async def wait_ready(self, timeout_s: float) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            await asyncio.gather(*(m.wait_ready(http, timeout_s) for m in self.services))

    async def stop(self) -> None:
        await asyncio.gather(*(m.stop() for m in self.members))
