"""Login limits checked before a password is hashed, and the bounded queue of hashing work.

Policy (docs/security.md): attempts are counted per client address — on one account, and
over all accounts — so a third party can lock out only itself, never the candidate at their
own computer. Successful logins are given back. A global rate, shared by every process
through Redis, bounds the hashing the whole service admits (503 beyond it). With Redis down
logins go through, as passwords are still checked; each process' hashing queue still bounds
the CPU spent on them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from service.core.errors import LoginBusy, StoreUnavailable, TooManyRequests
from service.core.ports import LoginAttempts

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LoginLimits:
    per_account: int  # attempts of one client on one account in the window (0: no limit)
    per_client: int  # attempts of one client over all accounts in the window (0: no limit)
    window_s: int
    global_limit: int = 0  # attempts of the whole service in global_window_s (0: no limit)
    global_window_s: int = 1


class LoginGuard:
    def __init__(self, counters: LoginAttempts, limits: LoginLimits) -> None:
        self._counters = counters
        self._limits = limits

    @property
    def enabled(self) -> bool:
        return self._limits.per_account > 0 or self._limits.per_client > 0

    async def reserve(self, client: str, account: str) -> bool:
        """Count this attempt before any hashing: TooManyRequests past a client's limit, then
        LoginBusy past the global one (the client's attempt given back: the service refused
        it, not the client's guesses). True when the client's attempt stays counted (False:
        limits off, Redis down)."""
        counted = await self._reserve_client(client, account)
        if self._limits.global_limit > 0:
            try:
                await self._reserve_global()
            except LoginBusy:
                if counted:
                    await self.succeeded(client, account)
                raise
        return counted

    async def _reserve_client(self, client: str, account: str) -> bool:
        if not self.enabled:
            return False
        limits = self._limits
        try:
            wait_s = await self._counters.reserve_login(
                client, account, limits.per_account, limits.per_client, limits.window_s
            )
        except StoreUnavailable:
            log.warning("login limits not checked: Redis unavailable")
            return False
        if wait_s:
            raise TooManyRequests(
                f"too many login attempts from this address; try again in {wait_s} s",
                retry_after_s=wait_s,
            )
        return True

    async def _reserve_global(self) -> None:
        limits = self._limits
        try:
            wait_s = await self._counters.reserve_global_login(
                limits.global_limit, limits.global_window_s
            )
        except StoreUnavailable:
            log.warning("global login rate not checked: Redis unavailable")
            return
        if wait_s:
            raise LoginBusy(
                f"too many logins right now; try again in {wait_s} s", retry_after_s=wait_s
            )

    async def succeeded(self, client: str, account: str) -> None:
        try:
            await self._counters.refund_login(client, account)
        except StoreUnavailable:
            log.warning("successful login stays counted: Redis unavailable")


class HashQueue:
    """argon2 runs on a pool of its own threads; at most ``waiting`` verifications wait for
    one. Beyond that a login is refused at once (503 + Retry-After) instead of queueing CPU
    work nobody will wait for."""

    def __init__(self, workers: int, waiting: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        self._capacity = workers + waiting
        self._admitted = 0

    async def run(self, fn: Callable[[], T]) -> T:
        if self._admitted >= self._capacity:
            raise LoginBusy
        self._admitted += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn)
        finally:
            self._admitted -= 1

    async def __aenter__(self) -> HashQueue:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
