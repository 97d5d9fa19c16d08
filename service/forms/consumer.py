"""The consumer: batches messages into version-guarded multi-row upserts, commits, then acks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from schemas import messages
from schemas.records import FormKey, FormRecord
from service.core import codec, logs
from service.core.errors import BrokerUnavailable, DatabaseUnavailable, RecordRejected
from service.core.metrics import ConsumerMetrics
from service.core.names import HEADER_REQUEST_ID
from service.core.ports import Database, Inbound
from service.core.settings import Settings
from service.core.versions import version_problem

log = logging.getLogger(__name__)
_BACKOFF_MAX_S = 5.0
_FAILED_BATCH_PAUSE_S = 1.0


class SaveJournal(Protocol):
    """Where every acknowledged save is kept (the save history); inserting a record twice
    keeps one."""

    async def record_saves(self, records: Sequence[FormRecord]) -> None: ...


class Unacked:
    """The deliveries this consumer holds and has not settled yet (acked, parked or handed
    back), with when each arrived: the age of the oldest is the metric that shows a consumer
    stuck on them (MySQL down or slow) while the queue depth alone does not."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._since: dict[int, float] = {}

    def hold(self, delivery: Inbound) -> None:
        self._since.setdefault(id(delivery), self._clock())

    def settle(self, delivery: Inbound) -> None:
        self._since.pop(id(delivery), None)

    def __len__(self) -> int:
        return len(self._since)

    def oldest_age_s(self) -> float:
        return self._clock() - min(self._since.values()) if self._since else 0.0


class FormWriter:
    """Applies batches of deliveries to MySQL. Nothing is acked before its row is committed;
    a message that can never be applied goes to the dead-letter queue with its reason."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        metrics: ConsumerMetrics,
        journal: SaveJournal | None = None,
    ) -> None:
        self._db = db
        self._journal = journal
        self._settings = settings
        self._metrics = metrics
        self._stop = asyncio.Event()
        self.unacked = Unacked()
        metrics.oldest_unacked.set_function(self.unacked.oldest_age_s)

    async def receive(self, inbox: asyncio.Queue[Inbound], delivery: Inbound) -> None:
        """What the broker calls with each delivery: held (and timed) until it is settled."""
        self.unacked.hold(delivery)
        await inbox.put(delivery)

    async def run(self, inbox: asyncio.Queue[Inbound], stop: asyncio.Event) -> None:
        self._stop = stop
        while not stop.is_set():
            batch = await self._collect(inbox)
            if batch:
                try:
                    await self.apply(batch)
                except _Abandoned:
                    return
                except Exception:
                    # A bug or an unforeseen failure must not end the consumer with messages
                    # stuck unacked on its channel. The batch goes back to the broker; one
                    # that keeps failing is dead-lettered by the queue's delivery limit.
                    log.exception("batch of %d failed; handing it back to the broker", len(batch))
                    await self._requeue(batch)
                    await asyncio.sleep(_FAILED_BATCH_PAUSE_S)

    async def _collect(self, inbox: asyncio.Queue[Inbound]) -> list[Inbound]:
        """Deliveries holding up to ``consume_batch`` records, waiting at most
        ``consume_wait_ms`` after the first one (and at most a second for the first, to
        notice a stop). When the consumer is behind, what already waits is taken at once:
        the upserts grow instead of the lag."""
        try:
            first = await asyncio.wait_for(inbox.get(), timeout=1.0)
        except TimeoutError:
            return []
        batch = [first]
        records = _records_in(first)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.consume_wait_ms / 1000
        while records < self._settings.consume_batch:
            if inbox.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    delivery = await asyncio.wait_for(inbox.get(), timeout=remaining)
                except TimeoutError:
                    break
            else:
                delivery = inbox.get_nowait()  # no timer per message when behind
            batch.append(delivery)
            records += _records_in(delivery)
        return batch

    async def apply(self, batch: Sequence[Inbound]) -> None:
        held: list[_Held] = []
        now_us = int(time.time() * 1_000_000)
        ahead_us = self._settings.version_max_ahead_s * 1_000_000
        for delivery in batch:
            try:
                parts = messages.decode_parts(delivery.headers, delivery.body)
            except ValueError as exc:
                await self._dead_letter(delivery, f"undecodable message: {exc}")
                continue
            entry = _Held(delivery, messages.is_batch(delivery.headers))
            for part in parts:
                problem = part.problem
                if part.record is not None and problem is None:
                    try:
                        codec.unpack(part.record.payload)  # the choices must inflate and parse
                    except ValueError as exc:
                        problem = str(exc)
                if part.record is not None and problem is None:
                    # A version out of range in MySQL would make the version guard drop every
                    # later save of the form: such a record is refused, never written.
                    refused = version_problem(part.record.version, now_us, ahead_us)
                    if refused:
                        entry.bad.append((part.alone, f"refused: {refused}"))
                        continue
                    entry.good.append((part.record, part.alone))
                else:
                    entry.bad.append((part.alone, f"undecodable message: {problem}"))
            held.append(entry)
        good = [record for h in held for record, _ in h.good]
        if self._journal is not None:
            await self._journaled(good)
        rejected = await self._write(good)
        for entry in held:
            await self._settle(entry, rejected)

    async def _settle(self, entry: _Held, rejected: dict[FormKey, str]) -> None:
        """Ack a delivery once each of its records is applied or parked alone with its reason;
        a record MySQL refused or that cannot be read never holds back its neighbours."""
        parked: list[tuple[_Alone, str, FormRecord | None]] = [(a, r, None) for a, r in entry.bad]
        applied = 0
        for record, alone in entry.good:
            if record.key in rejected:
                parked.append((alone, rejected[record.key], record))
            else:
                applied += 1
                if log.isEnabledFor(logging.DEBUG):
                    with _as_request(entry.delivery, record):
                        log.debug(
                            "applied",
                            extra={
                                "fields": {
                                    "candidate_id": record.candidate_id,
                                    "batch": record.batch,
                                    "version": record.version,
                                }
                            },
                        )
        if not entry.batch:
            if parked:
                await self._dead_letter(entry.delivery, parked[0][1])
                return
        else:
            for alone, reason, refused in parked:
                if alone is None:  # only version 1 messages lack it
                    continue
                with _as_request(entry.delivery, refused):
                    log.error("dead-lettering a record of a batch message: %s", reason)
                try:
                    await entry.delivery.dead_letter_part(*alone, reason)
                except BrokerUnavailable:
                    # Unacked: the whole message is redelivered (harmless, version-guarded).
                    log.warning("broker gone while dead-lettering; it will be redelivered")
                    self.unacked.settle(entry.delivery)
                    return
                self._metrics.dead_lettered.inc()
        await self._ack(entry.delivery)
        self._metrics.consumed.labels("applied").inc(applied)

    async def _write(self, records: Sequence[FormRecord]) -> dict[FormKey, str]:
        """Upsert the newest record per form; retry while MySQL is down (the messages wait,
        unacked); bisect around rows MySQL refuses. Returns refused keys with the reason."""
        newest: dict[FormKey, FormRecord] = {}
        for r in records:
            if r.key not in newest or r.version > newest[r.key].version:
                newest[r.key] = r
        return await self._upsert_isolating(list(newest.values()))

    async def _upsert_isolating(self, rows: list[FormRecord]) -> dict[FormKey, str]:
        if not rows:
            return {}
        try:
            started = time.monotonic()
            await self._upsert_retrying(rows)
            self._observe_commit(rows, time.monotonic() - started)
            self._metrics.mysql_commits.labels("consumer").inc()
            return {}
        except RecordRejected as exc:
            if len(rows) == 1:
                return {rows[0].key: str(exc)}
        half = len(rows) // 2
        return await self._upsert_isolating(rows[:half]) | await self._upsert_isolating(rows[half:])

    def _observe_commit(self, rows: list[FormRecord], seconds: float) -> None:
        self._metrics.batch_rows.observe(len(rows))
        self._metrics.upsert.observe(seconds)
        now_us = time.time() * 1_000_000
        delays = [max(0.0, (now_us - r.updated_us) / 1_000_000) for r in rows]
        for delay in delays:
            self._metrics.delay.observe(delay)
        self._metrics.lag.set(max(delays))

    async def _upsert_retrying(self, rows: list[FormRecord]) -> None:
        delay = 0.1
        while True:
            try:
                await self._db.upsert_forms(rows)
                return
            except DatabaseUnavailable as exc:
                if self._stop.is_set():
                    # Stopping while MySQL is down: leave the batch unacked; the broker
                    # redelivers it to the next consumer.
                    raise _Abandoned from exc
                log.warning("MySQL unavailable, %d rows wait: %s", len(rows), exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)

    async def _journaled(self, records: list[FormRecord]) -> None:
        """Every record of the batch (not only the newest per form) into the save history,
        before the forms: a crash in between redelivers them, and the history keeps one row
        per version. Waits while MySQL is down, as the upsert does."""
        journal = self._journal
        delay = 0.1
        while records and journal is not None:
            try:
                await journal.record_saves(records)
                return
            except RecordRejected as exc:  # the form still goes on to MySQL
                log.error("save history refused %d records: %s", len(records), exc)
                return
            except DatabaseUnavailable as exc:
                if self._stop.is_set():
                    raise _Abandoned from exc
                log.warning("MySQL unavailable, the save history of %d waits", len(records))
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)

    async def _dead_letter(self, delivery: Inbound, reason: str) -> None:
        with _as_request(delivery):
            log.error("dead-lettering a message: %s", reason)
        try:
            await delivery.dead_letter(reason)
        except BrokerUnavailable:
            log.warning("broker gone while dead-lettering; it will be redelivered")
            return
        finally:  # settled, or redelivered to someone: this consumer no longer holds it
            self.unacked.settle(delivery)
        self._metrics.dead_lettered.inc()

    async def _requeue(self, batch: Sequence[Inbound]) -> None:
        for delivery in batch:
            self.unacked.settle(delivery)
        for delivery in batch:
            try:
                await delivery.requeue()
            except BrokerUnavailable:
                return  # the channel is gone: the broker redelivers everything unacked

    async def _ack(self, delivery: Inbound) -> None:
        try:
            await delivery.ack()
        except BrokerUnavailable:
            log.warning("broker gone before ack; the message will be redelivered (harmless)")
        finally:
            self.unacked.settle(delivery)


@contextmanager
def _as_request(delivery: Inbound, record: FormRecord | None = None) -> Iterator[None]:
    """Log lines about this message carry the id of the API request that published it: the
    record's own (each frame of a batch message carries its save's), else the message's
    header (a version 1 message)."""
    rid: object = record.origin.request_id if record and record.origin else None
    if not rid:
        rid = delivery.headers.get(HEADER_REQUEST_ID)
    token = logs.request_id.set(rid if isinstance(rid, str) and rid else "-")
    try:
        yield
    finally:
        logs.request_id.reset(token)


def _records_in(delivery: Inbound) -> int:
    """Records a delivery carries, by its headers (a batch message says how many)."""
    count = delivery.headers.get("x-records", 1) if messages.is_batch(delivery.headers) else 1
    return count if isinstance(count, int) and count > 0 else 1


_Alone = tuple[dict[str, Any], bytes] | None  # a batch record as a message of its own


@dataclass(slots=True)
class _Held:
    """A delivery being applied: its readable records and the ones to park, with reasons."""

    delivery: Inbound
    batch: bool
    good: list[tuple[FormRecord, _Alone]] = field(default_factory=list)
    bad: list[tuple[_Alone, str]] = field(default_factory=list)


class _Abandoned(Exception):
    """A batch given up (unacked) because the consumer is stopping."""
