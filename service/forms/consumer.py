"""The consumer: batches messages into version-guarded multi-row upserts, commits, then acks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

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


class FormWriter:
    """Applies batches of deliveries to MySQL. Nothing is acked before its row is committed;
    a message that can never be applied goes to the dead-letter queue with its reason."""

    def __init__(self, db: Database, settings: Settings, metrics: ConsumerMetrics) -> None:
        self._db = db
        self._settings = settings
        self._metrics = metrics
        self._stop = asyncio.Event()

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
        """Up to ``consume_batch`` deliveries, waiting at most ``consume_wait_ms`` after the
        first one (and at most a second for the first, to notice a stop)."""
        try:
            first = await asyncio.wait_for(inbox.get(), timeout=1.0)
        except TimeoutError:
            return []
        batch = [first]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.consume_wait_ms / 1000
        while len(batch) < self._settings.consume_batch:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(inbox.get(), timeout=remaining))
            except TimeoutError:
                break
        return batch

    async def apply(self, batch: Sequence[Inbound]) -> None:
        decoded: list[tuple[Inbound, FormRecord]] = []
        now_us = int(time.time() * 1_000_000)
        ahead_us = self._settings.version_max_ahead_s * 1_000_000
        for delivery in batch:
            try:
                record = messages.decode(delivery.headers, delivery.body)
                codec.unpack(record.payload)  # the choices must inflate and parse
            except ValueError as exc:
                await self._dead_letter(delivery, f"undecodable message: {exc}")
                continue
            # A version out of range in MySQL would make the version guard drop every later
            # save of the form: such a message is refused, never written.
            problem = version_problem(record.version, now_us, ahead_us)
            if problem:
                await self._dead_letter(delivery, f"refused: {problem}")
                continue
            decoded.append((delivery, record))
        rejected = await self._write([r for _, r in decoded])
        for delivery, record in decoded:
            if record.key in rejected:
                await self._dead_letter(delivery, rejected[record.key])
            else:
                await self._ack(delivery)
                self._metrics.consumed.labels("applied").inc()
                if log.isEnabledFor(logging.DEBUG):
                    with _as_request(delivery):
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

    async def _dead_letter(self, delivery: Inbound, reason: str) -> None:
        with _as_request(delivery):
            log.error("dead-lettering a message: %s", reason)
        try:
            await delivery.dead_letter(reason)
        except BrokerUnavailable:
            log.warning("broker gone while dead-lettering; it will be redelivered")
            return
        self._metrics.dead_lettered.inc()

    async def _requeue(self, batch: Sequence[Inbound]) -> None:
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


@contextmanager
def _as_request(delivery: Inbound) -> Iterator[None]:
    """Log lines about this message carry the id of the API request that published it."""
    rid = delivery.headers.get(HEADER_REQUEST_ID)
    token = logs.request_id.set(rid if isinstance(rid, str) else "-")
    try:
        yield
    finally:
        logs.request_id.reset(token)


class _Abandoned(Exception):
    """A batch given up (unacked) because the consumer is stopping."""
