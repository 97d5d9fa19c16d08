"""The shard count a process runs with must be the one recorded at migrate time; a process
that starts while MySQL is down checks it as soon as MySQL answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from service.core.background import running
from service.core.errors import DatabaseUnavailable
from service.core.settings_rules import SettingsError

log = logging.getLogger(__name__)


class ShardGuard:
    """``problem`` is None until a check finds the shard count wrong (readiness fails then)."""

    def __init__(self, check: Callable[[], Awaitable[None]], retry_s: float) -> None:
        self._check = check
        self._retry_s = retry_s
        self.problem: str | None = None

    async def first(self) -> bool:
        """True once verified; False when MySQL did not answer. SettingsError on a mismatch:
        the process must not start."""
        try:
            await self._check()
        except DatabaseUnavailable as exc:
            log.warning("shard count not verified yet (MySQL unavailable: %s)", exc)
            return False
        return True

    @asynccontextmanager
    async def guarding(self) -> AsyncIterator[None]:
        """Verify now (raising on a mismatch) or, when MySQL is down, in the background."""
        if await self.first():
            yield
            return

        async def later() -> None:
            while True:
                await asyncio.sleep(self._retry_s)
                try:
                    await self._check()
                except DatabaseUnavailable:
                    continue
                except SettingsError as exc:
                    self.problem = str(exc)
                    log.critical("refusing to serve: %s", exc)
                    return
                log.info("shard count verified")
                return

        async with running(later(), name="shard-count-check"):
            yield
