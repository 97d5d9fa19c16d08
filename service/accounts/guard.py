"""Refuses logins to an account after too many failures within a window."""

from __future__ import annotations

import logging

from service.core.errors import StoreUnavailable, TooManyRequests
from service.core.ports import LoginFailures

log = logging.getLogger(__name__)


class LoginGuard:
    """Counts failures only, so a candidate who logs in often is never locked out; with
    Redis down it lets logins through (passwords are still checked against MySQL)."""

    def __init__(self, counters: LoginFailures, limit: int, window_s: int) -> None:
        self._counters = counters
        self._limit = limit
        self._window_s = window_s

    async def check(self, account: str) -> None:
        if self._limit <= 0:
            return
        try:
            failures = await self._counters.login_failures(account)
        except StoreUnavailable:
            log.warning("login limit not checked: Redis unavailable")
            return
        if failures >= self._limit:
            raise TooManyRequests(
                f"too many failed logins; try again within {self._window_s} s",
                retry_after_s=self._window_s,
            )

    async def failed(self, account: str) -> None:
        if self._limit <= 0:
            return
        try:
            await self._counters.add_login_failure(account, self._window_s)
        except StoreUnavailable:
            log.warning("failed login not counted: Redis unavailable")
