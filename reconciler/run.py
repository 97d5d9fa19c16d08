"""One reconcile run: collect the forms to check per shard, compare, repair, report."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeGuard

from reconciler.metrics import ReconcileMetrics
from reconciler.model import (
    MODE_FULL,
    OUTCOME_DRIFT,
    OUTCOME_FAILED,
    OUTCOME_OK,
    RunReport,
    Stamp,
    Verdict,
    judge,
)
from reconciler.ports import MySQLSide, RedisSide
from schemas.records import FormKey, FormRecord
from service.core.errors import DatabaseUnavailable, RecordRejected, Unavailable, VolregError
from service.core.settings import Settings
from service.core.versions import form_problem

log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 2)  # TIMESTAMP starts at 1970-01-01 00:00:01 UTC


class LockBusy(Exception):
    """Another reconcile run holds the lock."""


@dataclass(slots=True)
class Progress:
    """What the status endpoint shows about the run in progress."""

    running: bool = False
    mode: str = ""
    shards_done: int = 0
    shards_total: int = 0
    current: RunReport | None = None
    last: RunReport | None = None
    history: list[RunReport] = field(default_factory=list)


class Reconciler:
    def __init__(
        self,
        redis: RedisSide,
        mysql: MySQLSide,
        settings: Settings,
        metrics: ReconcileMetrics | None = None,
    ) -> None:
        self._redis = redis
        self._mysql = mysql
        self._settings = settings
        self._metrics = metrics
        self.progress = Progress()

    async def run(self, mode: str, shard: int | None = None) -> RunReport:
        """One run under the cross-process lock; raises ``LockBusy`` when another holds it."""
        ttl = self._settings.reconcile_lock_ttl_s
        token = await self._redis.acquire(ttl)
        if token is None:
            raise LockBusy
        keeper = asyncio.create_task(self._keep_lock(token, ttl), name="reconcile-lock-renewal")
        try:
            return await self._run(mode, shard)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            with contextlib.suppress(Unavailable):  # it expires by itself
                await self._redis.release(token)

    async def _keep_lock(self, token: str, ttl: float) -> None:
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                if not await self._redis.renew(token, ttl):
                    # Repairs are compare-and-set, so an overlapping run does no harm.
                    log.warning("reconcile lock lost; another run may overlap")
                    return
            except Unavailable as exc:
                log.warning("could not renew the reconcile lock: %s", exc)

    async def _run(self, mode: str, shard: int | None) -> RunReport:
        started = time.monotonic()
        report = RunReport(mode, shard, datetime.now())
        previous = self.progress
        self.progress = Progress(True, mode, 0, 0, report, previous.last, previous.history)
        try:
            report.started_at = await self._mysql.now()
            redis_start = await self._redis.now_us()
            since_mysql, since_redis = await self._mysql.last_marks(shard)
            if mode == MODE_FULL:
                since_mysql = since_redis = None
            shards = [shard] if shard is not None else list(range(self._settings.shards))
            self.progress.shards_total = len(shards)
            oldest_in_grace: list[int] = []
            for s in shards:
                keys = [k async for k in self._keys(s, mode, since_mysql, since_redis)]
                batch = self._settings.reconcile_batch
                for i in range(0, len(keys), batch):
                    await self._check(keys[i : i + batch], report, oldest_in_grace)
                self.progress.shards_done += 1
            self._set_marks(report, since_mysql, since_redis, redis_start, oldest_in_grace)
            report.outcome = OUTCOME_DRIFT if report.unrepaired else OUTCOME_OK
        except VolregError as exc:  # a dependency down, or refusing (schema not migrated)
            report.outcome, report.error = OUTCOME_FAILED, f"{exc.code}: {exc}"
        report.duration_s = time.monotonic() - started
        await self._finish(report)
        return report

    def _set_marks(
        self,
        report: RunReport,
        since_mysql: datetime | None,
        since_redis: int | None,
        redis_start: int,
        oldest_in_grace: list[int],
    ) -> None:
        """The next incremental run starts here: a little before this run started (saves in
        flight then), before any form still in its grace period, and not at all past
        unrepaired drift (it is checked again)."""
        if report.unrepaired:
            report.mysql_mark, report.redis_mark_us = since_mysql, since_redis
            return
        overlap = self._settings.reconcile_overlap_s
        report.mysql_mark = report.started_at - timedelta(seconds=overlap)
        report.redis_mark_us = min([redis_start - int(overlap * 1e6), *oldest_in_grace])

    async def _finish(self, report: RunReport) -> None:
        try:
            await self._mysql.record_run(report)
        except (DatabaseUnavailable, RecordRejected) as exc:
            log.error("could not record the reconcile report in MySQL: %s", exc)
        log.log(
            logging.WARNING if report.outcome != OUTCOME_OK else logging.INFO,
            "reconcile %s run %s",
            report.mode,
            report.outcome,
            extra={"fields": {"report": report.to_json()}},
        )
        if self._metrics is not None:
            self._metrics.observe(report)
        self.progress.running = False
        self.progress.last = report
        self.progress.history = [*self.progress.history[-19:], report]

    async def _keys(
        self, shard: int, mode: str, since_mysql: datetime | None, since_redis: int | None
    ) -> AsyncIterator[FormKey]:
        """Each form to check once: every form of the shard (full), or the ones changed on
        either side since the marks (incremental)."""
        seen: set[FormKey] = set()
        page = self._settings.reconcile_batch
        sources = (
            (self._mysql_all(shard, page), self._redis_all(shard, page))
            if mode == MODE_FULL
            else (
                self._mysql_changed(shard, since_mysql or _EPOCH, page),
                self._redis_changed(shard, since_redis or 0, page),
            )
        )
        for source in sources:
            async for keys in source:
                for key in keys:
                    if key not in seen:
                        seen.add(key)
                        yield key

    async def _mysql_all(self, shard: int, page: int) -> AsyncIterator[list[FormKey]]:
        after: FormKey | None = None
        while keys := await self._mysql.keys_page(shard, after, page):
            yield keys
            after = keys[-1]

    async def _redis_all(self, shard: int, page: int) -> AsyncIterator[list[FormKey]]:
        async for keys in self._redis.indexed(shard, page):
            yield keys

    async def _mysql_changed(
        self, shard: int, since: datetime, page: int
    ) -> AsyncIterator[list[FormKey]]:
        after: tuple[datetime, FormKey] | None = None
        while rows := await self._mysql.changed_page(shard, since, after, page):
            yield [key for _, key in rows]
            after = rows[-1]

    async def _redis_changed(
        self, shard: int, since_us: int, page: int
    ) -> AsyncIterator[list[FormKey]]:
        offset = 0
        while keys := await self._redis.changed_page(shard, since_us, offset, page):
            yield keys
            offset += len(keys)

    async def _check(
        self, keys: Sequence[FormKey], report: RunReport, oldest_in_grace: list[int]
    ) -> None:
        verdicts, in_redis = await self._judge(keys)
        report.checked += len(keys)
        stale_redis = [k for k, v in verdicts.items() if v is Verdict.REDIS_STALE]
        stale_mysql = [k for k, v in verdicts.items() if v is Verdict.MYSQL_STALE]
        in_grace = [k for k, v in verdicts.items() if v is Verdict.IN_GRACE]
        report.in_grace += len(in_grace)
        if in_grace:
            oldest_in_grace.append(min(in_redis[k].updated_us for k in in_grace))
        report.drifted += len(stale_redis) + len(stale_mysql)
        if not stale_redis and not stale_mysql:
            return
        # Both repairs are compare-and-set: a save that lands meanwhile is never overwritten.
        await self._redis.fill_many(await self._mysql.records(stale_redis))
        await self._repair_mysql(stale_mysql)
        after, _ = await self._judge([*stale_redis, *stale_mysql])
        for key, verdict in after.items():
            if verdict in (Verdict.REDIS_STALE, Verdict.MYSQL_STALE):
                report.unrepaired += 1
                report.unrepaired_keys.append(f"{key.candidate_id}:{key.batch}")
            elif verdicts[key] is Verdict.REDIS_STALE:
                report.repaired_redis += 1
            else:
                report.repaired_mysql += 1

    async def _judge(
        self, keys: Sequence[FormKey]
    ) -> tuple[dict[FormKey, Verdict], dict[FormKey, Stamp]]:
        in_redis = await self._redis.stamps(keys)
        in_mysql = await self._mysql.stamps(keys)
        now = await self._redis.now_us()
        grace = int(self._settings.reconcile_grace_s * 1e6)
        verdicts = {k: judge(in_redis.get(k), in_mysql.get(k), now, grace) for k in keys}
        return verdicts, in_redis

    async def _repair_mysql(self, keys: Sequence[FormKey]) -> None:
        records = [r for r in [await self._redis.read(k) for k in keys] if self._sound(r)]
        try:
            await self._mysql.upsert_forms(records)
            return
        except RecordRejected:
            pass
        for record in records:  # find the ones MySQL refuses; the rest still get repaired
            await self._upsert_one(record)

    def _sound(self, record: FormRecord | None) -> TypeGuard[FormRecord]:
        """Only a form a save could have produced goes from Redis into MySQL: anyone who can
        write Redis must not be able to plant versions or payloads there (it stays drift)."""
        if record is None:
            return False
        ahead_us = self._settings.version_max_ahead_s * 1_000_000
        problem = form_problem(record, int(time.time() * 1_000_000), ahead_us)
        if problem:
            log.error("not copying the Redis copy of %s into MySQL: %s", record.key, problem)
        return problem is None

    async def _upsert_one(self, record: FormRecord) -> None:
        try:
            await self._mysql.upsert_forms([record])
        except RecordRejected as exc:
            log.error("MySQL refuses the Redis copy of %s: %s", record.key, exc)
