"""Readiness: ping every dependency, each under a timeout, all at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Probes:
    checks: dict[str, Callable[[], Awaitable[None]]]
    timeout_s: float

    async def run(self) -> dict[str, str]:
        async def one(check: Callable[[], Awaitable[None]]) -> str:
            try:
                async with asyncio.timeout(self.timeout_s):
                    await check()
            except Exception as exc:  # report every failure as it is: this is a probe
                return f"down: {exc.__class__.__name__}: {exc}"[:200]
            return "ok"

        results = await asyncio.gather(*(one(c) for c in self.checks.values()))
        return dict(zip(self.checks, results, strict=True))
