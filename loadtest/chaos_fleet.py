"""The volreg processes of a chaos run: API servers and consumers, each in a session of its
own so that SIGKILL hits it alone, with its log in the run's directory."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from pathlib import Path

import aiohttp

from loadtest.children import Child
from loadtest.cluster_local import free_port
from schemas import urls
from service.core.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLREG_")}
    for f in dataclasses.fields(settings):
        env[f"VOLREG_{f.name.upper()}"] = str(getattr(settings, f.name))
    return env


class Member(Child):
    """One ``volreg serve`` or ``volreg consume`` process."""

    def __init__(self, command: str, settings: Settings, log: Path) -> None:
        super().__init__()
        self.command = command
        self.settings = settings
        self.log = log

    @property
    def name(self) -> str:
        if self.command == "serve":
            return f"service :{self.settings.http_port}"
        return f"consumer {self.log.stem}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}"

    async def start(self) -> None:
        argv = [sys.executable, "-m", "service.main.cli", self.command]
        await self.spawn(argv, settings_env(self.settings), self.log)

    async def wait_ready(self, http: aiohttp.ClientSession, timeout_s: float) -> None:
        """An API is ready when /health/ready says every dependency answers."""
        if self.command != "serve":
            return

        async def ready() -> bool:
            try:
                async with http.get(self.base_url + urls.READY) as resp:
                    return resp.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

        await self.wait_until(ready, timeout_s, f"{self.name} (see {self.log})")


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
