"""Admission batches and their filing windows, cached per process and refreshed from their
source: MySQL, or (in the API) the catalogue, whose multi-level cache makes ``ttl_s`` 0."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

from service.core.errors import DatabaseUnavailable, NotFound, WindowClosed
from service.core.ports import Batch


class BatchSource(Protocol):
    async def list_batches(self) -> list[Batch]: ...


class BatchWindows:
    def __init__(
        self,
        db: BatchSource,
        ttl_s: float,
        on_miss: Callable[[], Awaitable[list[Batch]]] | None = None,
    ) -> None:
        """``on_miss`` re-reads the batches past any cache when a code is unknown."""
        self._db = db
        self._ttl_s = ttl_s
        self._on_miss = on_miss
        self._batches: dict[str, Batch] | None = None
        self._listed: list[Batch] | None = None
        self._loaded_at = 0.0

    async def get(self, code: str) -> Batch:
        if self._batches is None or time.monotonic() - self._loaded_at > self._ttl_s:
            try:
                listed = await self._db.list_batches()
                if listed is not self._listed:  # a cached source hands back the same list
                    self._batches = {b.code: b for b in listed}
                    self._listed = listed
                self._loaded_at = time.monotonic()
            except DatabaseUnavailable:
                if self._batches is None:
                    raise
                # MySQL is down: the last good catalogue keeps saves going.
        batches = self._batches or {}
        batch = batches.get(code)
        if batch is None and self._on_miss is not None:
            self._batches = {b.code: b for b in await self._on_miss()}
            self._listed = None
            batch = self._batches.get(code)
        if batch is None:
            raise NotFound(f"no admission batch {code!r}")
        return batch

    async def require_open(self, code: str, now: datetime) -> Batch:
        batch = await self.get(code)
        if not batch.is_open(now):
            raise WindowClosed(
                f"filing for {code!r} is open from {batch.opens_at.isoformat()} "
                f"until {batch.closes_at.isoformat()}"
            )
        return batch
