"""MySQL split by candidate shard: the shard map (shard ranges → DSN) and a ``Database`` that
sends every row to the database holding its shard."""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from schemas.records import FormKey, FormRecord
from service.core.errors import DatabaseUnavailable
from service.core.ids import shard_of
from service.core.ports import Batch, Candidate
from service.core.settings import Settings
from service.storage.mysql_db import MySQLDatabase, connect_one, wait_all

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ShardMap:
    """Sorted, gap-free shard ranges; ``targets[i]`` is the DSN of ``ranges[i]``. Ranges may
    share a DSN (one server holding several ranges)."""

    lows: tuple[int, ...]
    highs: tuple[int, ...]
    targets: tuple[str, ...]

    @classmethod
    def parse(cls, text: str, shards: int) -> ShardMap:
        """``"0-127=mysql://...,128-255=mysql://..."``; the ranges must cover ``0..shards-1``
        exactly once, or the process refuses to start."""
        spans: list[tuple[int, int, str]] = []
        for item in filter(None, (i.strip() for i in text.split(","))):
            span, sep, dsn = item.partition("=")
            low, dash, high = span.strip().partition("-")
            if not sep or not dsn.strip() or not low.isdigit() or (dash and not high.isdigit()):
                raise ValueError(f"VOLREG_MYSQL_SHARDS: expected LOW-HIGH=DSN, got {item!r}")
            spans.append((int(low), int(high) if dash else int(low), dsn.strip()))
        spans.sort()
        expected = 0
        for first, last, _ in spans:
            if first != expected or last < first:
                raise ValueError(
                    f"VOLREG_MYSQL_SHARDS: ranges must cover 0-{shards - 1} without gaps or "
                    f"overlaps; shard {expected} is next, got {first}-{last}"
                )
            expected = last + 1
        if expected != shards:
            raise ValueError(
                f"VOLREG_MYSQL_SHARDS: ranges end at {expected - 1}, expected {shards - 1}"
            )
        return cls(
            tuple(s[0] for s in spans), tuple(s[1] for s in spans), tuple(s[2] for s in spans)
        )

    def target_of(self, shard: int) -> str:
        return self.targets[bisect.bisect_right(self.lows, shard) - 1]

    @property
    def dsns(self) -> list[str]:
        """Each database once, in shard order."""
        return list(dict.fromkeys(self.targets))


def database_dsns(settings: Settings) -> list[str]:
    """Every database this configuration writes to (migrations run on each)."""
    if not settings.mysql_shards:
        return [settings.mysql_dsn]
    return ShardMap.parse(settings.mysql_shards, settings.shards).dsns


def for_dsn(settings: Settings, dsn: str) -> Settings:
    """``settings`` pointed at one database of the shard map."""
    return dataclasses.replace(settings, mysql_dsn=dsn, mysql_shards="")


class ShardedDatabase:
    """Same interface as ``MySQLDatabase``. Candidate rows (candidates, exam results, forms)
    live only on their shard's database; the small catalogue (admission batches) is copied
    to every database so that each answers on its own."""

    def __init__(self, shard_map: ShardMap, parts: dict[str, MySQLDatabase], shards: int) -> None:
        self._map = shard_map
        self._parts = parts
        self._shards = shards

    @property
    def parts(self) -> list[MySQLDatabase]:
        """One database per DSN, in shard order (the reconciler scans each)."""
        return list(self._parts.values())

    def part_of(self, candidate_id: str) -> MySQLDatabase:
        return self._parts[self._map.target_of(shard_of(candidate_id, self._shards))]

    def _split(self, items: Iterable[T], candidate: Callable[[T], str]) -> dict[str, list[T]]:
        groups: dict[str, list[T]] = {}
        for item in items:
            dsn = self._map.target_of(shard_of(candidate(item), self._shards))
            groups.setdefault(dsn, []).append(item)
        return groups

    async def get_form(self, key: FormKey) -> FormRecord | None:
        return await self.part_of(key.candidate_id).get_form(key)

    async def upsert_forms(self, records: Sequence[FormRecord]) -> None:
        """One upsert per database, all at once. When a database fails the whole call fails:
        the consumer retries every row, which is harmless as the upserts are version-guarded."""
        groups = self._split(records, lambda r: r.candidate_id)
        await wait_all(self._parts[dsn].upsert_forms(rows) for dsn, rows in groups.items())

    async def upsert_candidates(self, rows: Sequence[tuple[str, str, str, str]]) -> None:
        groups = self._split(rows, lambda r: r[0])
        await wait_all(self._parts[dsn].upsert_candidates(part) for dsn, part in groups.items())

    async def upsert_exams(self, exams: dict[str, dict[str, Any]]) -> None:
        groups = self._split(exams.items(), lambda item: item[0])
        await wait_all(self._parts[dsn].upsert_exams(dict(part)) for dsn, part in groups.items())

    async def upsert_batch(self, batch: Batch) -> None:
        await wait_all(part.upsert_batch(batch) for part in self.parts)

    async def get_candidate(self, candidate_id: str) -> Candidate | None:
        return await self.part_of(candidate_id).get_candidate(candidate_id)

    async def token_generation(self, candidate_id: str) -> int | None:
        return await self.part_of(candidate_id).token_generation(candidate_id)

    async def bump_token_generation(self, candidate_id: str) -> None:
        await self.part_of(candidate_id).bump_token_generation(candidate_id)

    async def get_exam(self, candidate_id: str) -> dict[str, Any] | None:
        return await self.part_of(candidate_id).get_exam(candidate_id)

    async def list_batches(self) -> list[Batch]:
        """From the first database that answers: every one holds the catalogue."""
        error: DatabaseUnavailable | None = None
        for part in self.parts:
            try:
                return await part.list_batches()
            except DatabaseUnavailable as exc:
                error = exc
        assert error is not None
        raise error

    async def ping(self) -> None:
        await wait_all(part.ping() for part in self.parts)

    # --- Benchmark only (the naive design), routed like the real rows.
    async def naive_save_form(self, record: FormRecord) -> int:
        return await self.part_of(record.candidate_id).naive_save_form(record)


@asynccontextmanager
async def open_sharded(settings: Settings) -> AsyncIterator[ShardedDatabase]:
    """A pool per database of the shard map, each starting empty like a single database's."""
    shard_map = ShardMap.parse(settings.mysql_shards, settings.shards)
    async with AsyncExitStack() as stack:
        parts = {
            dsn: await stack.enter_async_context(connect_one(for_dsn(settings, dsn)))
            for dsn in shard_map.dsns
        }
        yield ShardedDatabase(shard_map, parts, settings.shards)
