"""Saving and reading forms: the save protocol of DESIGN.md, step by step."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from schemas.http import FormBody, choices_json
from schemas.records import STATUS_SAVED, FormKey, FormRecord, Origin
from service.core import codec
from service.core.errors import (
    DatabaseUnavailable,
    NotFound,
    PublishUncertain,
    RequestInProgress,
    StoreUnavailable,
    Unavailable,
    ValidationFailed,
    WindowClosed,
)
from service.core.ports import (
    Database,
    FormCache,
    HalfMessage,
    HalfPublisher,
    Missing,
    Publisher,
    Replay,
)
from service.core.read_through import read_through
from service.forms.transactions import committed
from service.forms.windows import BatchWindows

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Saved:
    version: int
    updated_us: int

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "updated_at": iso_us(self.updated_us)}


def iso_us(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000).astimezone().isoformat(timespec="microseconds")


def choices_of(record: FormRecord) -> list[Any]:
    return list(codec.unpack(record.payload))


def payload_of(form: FormBody) -> bytes:
    """The stored bytes of a form: its choices as gzip-compressed JSON."""
    return codec.compress(choices_json(form))


class ChoiceCheck(Protocol):
    async def check_choices(self, form: FormBody) -> None:
        """Raise ValidationFailed when a choice names no institution/major of the catalogue."""


class Forms:
    def __init__(
        self,
        cache: FormCache,
        publisher: Publisher,
        db: Database,
        batches: BatchWindows,
        catalogue: ChoiceCheck | None = None,
        observe: Callable[[str, float], None] | None = None,
        halves: HalfPublisher | None = None,
    ) -> None:
        """``observe(step, seconds)`` is told how long each step of a save took: ``stage``,
        ``publish`` (until the broker's confirm) and ``commit``. With ``halves`` saves go as
        transactional half messages instead of through ``publisher``."""
        self._cache = cache
        self._publisher = publisher
        self._halves = halves
        self._db = db
        self._batches = batches
        self._catalogue = catalogue
        self._observe = observe or _ignore

    async def save(
        self,
        key: FormKey,
        form: FormBody,
        idem: str | None,
        now: datetime,
        origin: Origin | None = None,
    ) -> Saved:
        """Stage in Redis → publish and await the broker's confirm → commit in Redis.

        A failure before the confirm leaves nothing visible. After the confirm the save is
        durable: if the commit then fails, consumers still write MySQL and the reconciler
        brings Redis up to date, but the client is told to retry (it was not visible yet).
        With transactional half messages a failed commit rolls the message back instead.
        """
        payload = payload_of(form)
        fingerprint = hashlib.sha256(payload).hexdigest()[:32]
        try:
            batch = await self._batches.require_open(key.batch, now)
            if self._catalogue is not None:
                await self._catalogue.check_choices(form)
        except (WindowClosed, NotFound, ValidationFailed):
            # A retry of a save that succeeded (its answer lost) gets that answer, also once
            # the window has closed or the catalogue changed since.
            replay = await self._recorded(key, idem)
            if replay is None:
                raise
            return _replayed(replay, fingerprint)
        started = time.perf_counter()
        # A submitted form of a batch without changes after submission is final: stage
        # refuses it atomically.
        locked = not batch.changes_after_submit
        staged = await self._cache.stage(key, idem, fingerprint, locked=locked)
        if isinstance(staged, Missing):
            floor = await self._floor(key)
            staged = await self._cache.stage(key, idem, fingerprint, floor, locked=locked)
            assert not isinstance(staged, Missing)  # with a floor the script never asks
        staged_at = time.perf_counter()
        self._observe("stage", staged_at - started)
        if isinstance(staged, Replay):
            return _replayed(staged.stored, fingerprint)
        record = FormRecord(
            key.candidate_id,
            key.batch,
            staged.version,
            staged.now_us,
            STATUS_SAVED,
            payload,
            origin,
        )
        stored = f"done {fingerprint} {record.version} {record.updated_us}"
        await self.deliver(record, idem, stored)
        return Saved(record.version, record.updated_us)

    async def deliver(self, record: FormRecord, idem: str | None, stored: str) -> None:
        """The save protocol after staging: publish ``record`` and await the broker's confirm,
        then commit it in Redis (``stored`` is the idempotency record to keep).

        With half messages (RocketMQ transactions) the confirm is the half message's, and it
        is committed after the Redis commit; a refused Redis commit rolls it back, so nothing
        of the save appears later (unless Redis holds it after all: then it is committed)."""
        started = time.perf_counter()
        half: HalfMessage | None = None
        try:
            if self._halves is None:
                await self._publisher.publish(record)
            else:
                half = await self._halves.publish_half(record)
        except PublishUncertain:
            # The message may be persisted and applied later: keep the key's pending marker,
            # so that a retry with it gets 503 (in progress) instead of saving a second time.
            raise
        except Unavailable:
            if idem:
                await self._forget(record.key, idem)
            raise
        confirmed_at = time.perf_counter()
        self._observe("publish", confirmed_at - started)
        # Not applied means a concurrent save with a newer version committed first: this save
        # is ordered before it, which is the outcome its version says.
        try:
            await self._cache.commit(record, idem, stored)
        except StoreUnavailable:
            if half is None or not await self._settle_refused(record, idem, half):
                raise
        else:
            if half is not None:
                await half.commit()
        self._observe("commit", time.perf_counter() - confirmed_at)

    async def _settle_refused(
        self, record: FormRecord, idem: str | None, half: HalfMessage
    ) -> bool:
        """The Redis commit of a half message's save failed: commit the half message when the
        commit happened after all (True: the save is done), roll it back when it did not, and
        leave it to the broker's check-back when Redis cannot tell (False for both)."""
        outcome = await committed(self._cache, self._db, record)
        if outcome:
            await half.commit()
            return True
        if outcome is False:
            await half.rollback()
            if idem:
                await self._forget(record.key, idem)
        return False

    async def _floor(self, key: FormKey) -> int:
        """The version MySQL holds for a form Redis does not have: a new version must exceed
        it even when Redis' clock stepped back or a failover lost the form."""
        try:
            record = await self._db.get_form(key)
        except DatabaseUnavailable:
            # Saves go on while MySQL is down (README); only Redis' clock orders them then.
            log.warning("MySQL unavailable: version floor of %s from the Redis clock only", key)
            return 0
        return record.version if record is not None else 0

    async def _recorded(self, key: FormKey, idem: str | None) -> str | None:
        if not idem:
            return None
        try:
            return await self._cache.idempotency_record(key, idem)
        except StoreUnavailable:
            return None  # the check's own answer then

    async def _forget(self, key: FormKey, idem: str) -> None:
        with contextlib.suppress(StoreUnavailable):  # the pending marker expires by itself
            await self._cache.release_idempotency(key, idem)

    async def read(self, key: FormKey) -> FormRecord:
        """Redis first; on a miss (or Redis down) MySQL, refilling Redis without overwriting a
        newer version."""
        record = await read_through(
            lambda: self._cache.read(key), lambda: self._db.get_form(key), self._cache.fill
        )
        if record is None:
            raise NotFound("no form saved for this batch yet")
        return record


def _ignore(_step: str, _seconds: float) -> None:
    pass


def _replayed(stored: str, fingerprint: str) -> Saved:
    state, _, rest = stored.partition(" ")
    first_fingerprint, _, result = rest.partition(" ")
    if first_fingerprint != fingerprint:
        raise ValidationFailed(
            "Idempotency-Key was already used with a different body",
            details=[{"path": "header.Idempotency-Key", "message": "reused with another body"}],
        )
    if state == "pending":
        raise RequestInProgress
    version, _, updated_us = result.partition(" ")
    return Saved(int(version), int(updated_us))
