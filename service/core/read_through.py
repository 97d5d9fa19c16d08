"""Read Redis first, fall back to MySQL (also when Redis is down), refill Redis afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from service.core.errors import StoreUnavailable

T = TypeVar("T")


async def read_through(
    from_cache: Callable[[], Awaitable[T | None]],
    from_db: Callable[[], Awaitable[T | None]],
    refill: Callable[[T], Awaitable[object]],
) -> T | None:
    redis_up = True
    try:
        value = await from_cache()
    except StoreUnavailable:
        value, redis_up = None, False
    if value is not None:
        return value
    value = await from_db()
    if value is not None and redis_up:
        with contextlib.suppress(StoreUnavailable):  # the next read refills it
            await refill(value)
    return value
