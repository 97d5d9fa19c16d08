"""In-memory fakes of the catalogue ports: its MySQL tables (``CatalogueTables``), the Redis
copies (``CatalogueCopies``) and the invalidation broadcast, for tests without servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from schemas.http import BatchBody, ControlLine, InstitutionBody
from service.core.errors import BrokerUnavailable, DatabaseUnavailable, StoreUnavailable
from service.core.ports import Batch
from service.forms.fakes import InMemoryDatabase


@dataclass
class InMemoryCatalogueTables:
    """The rows the real tables return, in the same order and shape. Batches live in the
    database's batch table (``db.batches``), as ``admission_batches`` serves both."""

    db: InMemoryDatabase
    down: bool = False
    institution_rows: dict[str, InstitutionBody] = field(default_factory=dict)
    control_lines: dict[str, list[ControlLine]] = field(default_factory=dict)

    def _check(self) -> None:
        if self.down:
            raise DatabaseUnavailable("mysql unavailable (in-memory fake set down)")

    async def institutions(self) -> list[dict[str, Any]]:
        self._check()
        rows = sorted(self.institution_rows.items())
        return [{"code": code, "name": body.name} for code, body in rows]

    async def institution(self, code: str) -> dict[str, Any] | None:
        self._check()
        body = self.institution_rows.get(code)
        if body is None:
            return None
        majors = sorted(body.majors, key=lambda m: m.code)
        return {
            "code": code,
            "name": body.name,
            "majors": [{"code": m.code, "name": m.name} for m in majors],
        }

    async def batches(self) -> list[dict[str, Any]]:
        self._check()
        return [
            {
                "code": b.code,
                "name": b.name,
                "opens_at": b.opens_at.isoformat(),
                "closes_at": b.closes_at.isoformat(),
                "control_lines": [
                    {"category": c.category, "min_score": float(c.min_score)}
                    for c in self.control_lines.get(b.code, [])
                ],
            }
            for b in sorted(self.db.batches.values(), key=lambda b: b.code)
        ]

    async def put_institution(self, code: str, body: InstitutionBody) -> None:
        self._check()
        self.institution_rows[code] = body

    async def put_institutions(self, items: Sequence[tuple[str, InstitutionBody]]) -> None:
        for code, body in items:
            await self.put_institution(code, body)

    async def put_batch(self, code: str, body: BatchBody) -> None:
        self._check()
        self.db.batches[code] = Batch(code, body.name, body.opens_at, body.closes_at)
        self.control_lines[code] = list(body.control_lines)


@dataclass
class InMemoryCatalogueCopies:
    """``CatalogueCopies``: the Redis copies by key (TTLs are not modelled)."""

    down: bool = False
    blobs: dict[str, bytes] = field(default_factory=dict)

    async def get_catalogue(self, key: str) -> bytes | None:
        if self.down:
            raise StoreUnavailable("redis unavailable (in-memory fake set down)")
        return self.blobs.get(key)

    async def put_catalogue(self, key: str, blob: bytes, ttl_s: int) -> None:
        if self.down:
            raise StoreUnavailable("redis unavailable (in-memory fake set down)")
        self.blobs[key] = blob


@dataclass
class InMemoryBroadcast:
    """The invalidation broadcast within one process: ``publish`` calls the listeners of
    every ``open`` still entered, as the broker delivers to every process (this one too)."""

    down: bool = False
    published: list[list[str]] = field(default_factory=list)
    _listeners: list[Callable[[list[str]], None]] = field(default_factory=list)

    async def publish(self, keys: list[str]) -> None:
        if self.down:
            raise BrokerUnavailable("broker unavailable (in-memory fake set down)")
        self.published.append(list(keys))
        for listener in list(self._listeners):
            listener(list(keys))

    @asynccontextmanager
    async def open(
        self,
        on_keys: Callable[[list[str]], None] | None = None,
        on_reset: Callable[[], None] | None = None,
    ) -> AsyncIterator[InMemoryBroadcast]:
        if on_keys is not None:
            self._listeners.append(on_keys)
        try:
            yield self
        finally:
            if on_keys is not None:
                self._listeners.remove(on_keys)
