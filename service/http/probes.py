"""Health: ping every dependency (``/health/deps``, metrics) and decide readiness.

Readiness is about this process, never about a shared dependency's momentary health: Redis,
the broker and MySQL are shared by every API process, so failing readiness on their outage
would take every process out of the load balancer at once, for failures that saves (MySQL)
or reads (Redis) survive by design.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from service.core.background import running

log = logging.getLogger(__name__)

# A connection's state as /health/ready reports it.
ESTABLISHED = "established"
CONNECTING = "connecting"  # never answered since the process started
RECONNECTING = "reconnecting"  # answered before; down now (the pool or link retries)
_FIRST_S = 0.1


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


class Readiness:
    """Ready once started with every connection established at least once, or once
    ``connect_grace_s`` has passed since start (a dependency down for everybody must not
    keep new processes out for ever). After that only this process's own state counts: it
    is shutting down, or a connection's reconnect machinery is gone (``machinery`` returns
    a problem per connection, or None while it is up or retrying)."""

    def __init__(
        self,
        probes: Probes,
        connect_grace_s: float,
        machinery: dict[str, Callable[[], str | None]] | None = None,
        on_result: Callable[[str, bool], None] | None = None,
    ) -> None:
        self._probes = probes
        self._grace_s = connect_grace_s
        self._machinery = machinery or {}
        self._on_result = on_result
        self._started_at = time.monotonic()
        self._seen: set[str] = set()
        self._last: dict[str, str] = {}
        self.draining = False

    async def dependencies(self) -> dict[str, str]:
        """Ping every dependency now; remembers which ones ever answered."""
        results = await self._probes.run()
        for name, result in results.items():
            if result == "ok":
                self._seen.add(name)
            if self._on_result is not None:
                self._on_result(name, result == "ok")
        self._last = results
        return results

    def _connected_or_late(self) -> bool:
        late = time.monotonic() - self._started_at >= self._grace_s
        return late or self._seen >= set(self._probes.checks)

    def state(self) -> tuple[bool, dict[str, str]]:
        checks: dict[str, str] = {"process": "draining" if self.draining else "serving"}
        ok = not self.draining
        in_grace = time.monotonic() - self._started_at < self._grace_s
        for name in self._probes.checks:
            if self._last.get(name) == "ok":
                checks[name] = ESTABLISHED
            elif name in self._seen:
                checks[name] = RECONNECTING
            else:
                checks[name] = CONNECTING
                ok = ok and not in_grace
        for name, problem_of in self._machinery.items():
            problem = problem_of()
            if problem is not None:
                checks[name] = f"failed: {problem}"
                ok = False
        return ok, checks

    @asynccontextmanager
    async def probing(self, interval_s: float) -> AsyncIterator[None]:
        """Ping the dependencies every ``interval_s`` in the background (a named task,
        cancelled on exit)."""

        async def loop() -> None:
            while True:
                try:
                    await self.dependencies()
                except Exception:  # a probe must never end the loop
                    log.exception("dependency probe failed")
                # Until every connection answered once (or the grace passed), look often:
                # readiness waits for it.
                await asyncio.sleep(interval_s if self._connected_or_late() else _FIRST_S)

        async with running(loop(), name="dependency-probe"):
            yield
