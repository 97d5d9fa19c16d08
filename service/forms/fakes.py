"""In-memory fakes of the forms ports: Redis (``FormCache``), the broker (``Publisher``) and
MySQL (``Database``), for tests of logic that needs no server.

They keep the adapters' contracts (a version is ``max(now, reserved + 1, committed + 1)``,
commits and upserts apply only a newer version, an Idempotency-Key is claimed once, a publish
returns only when it is "confirmed") and none of their durability: tests of what survives a
crash run on the real servers. Set ``down`` to make every call fail as a lost server does."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.records import STATUS_SUBMITTED, FormKey, FormRecord
from service.core.errors import (
    BrokerUnavailable,
    DatabaseUnavailable,
    FormSubmitted,
    PublishUncertain,
    StaleVersion,
    StoreUnavailable,
)
from service.core.ports import Batch, Candidate, Missing, Replay, Reserved
from service.core.versions import VERSION_LIMIT

_PENDING = "pending"


def _bounded(version: int) -> int:
    """A held version at or beyond 2^53 is corrupt and ignored, as in stage.lua."""
    return 0 if version >= VERSION_LIMIT or version < 0 else version


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class InMemoryFormCache:
    """``FormCache``: forms by key with their reserved and committed versions, idempotency
    markers, cached exam results."""

    down: bool = False
    forms: dict[FormKey, FormRecord] = field(default_factory=dict)
    reserved: dict[FormKey, int] = field(default_factory=dict)
    idempotency: dict[tuple[FormKey, str], str] = field(default_factory=dict)
    exams: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_generations: dict[tuple[bool, str], int] = field(default_factory=dict)

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("redis unavailable (in-memory fake set down)")

    async def stage(
        self,
        key: FormKey,
        idem: str | None,
        fingerprint: str,
        floor: int | None = None,
        *,
        locked: bool = False,
        expect: int | None = None,
    ) -> Reserved | Replay | Missing:
        """As stage.lua, without its per-candidate save limits (tested on the real Redis)."""
        self._check()
        if idem is not None:
            prev = self.idempotency.get((key, idem))
            if prev is not None:
                return Replay(prev)
        if floor is None and key not in self.forms and key not in self.reserved:
            return Missing()
        held = self.forms.get(key)
        if locked and held is not None and held.status == STATUS_SUBMITTED:
            raise FormSubmitted
        if expect is not None and (held.version if held else 0) != expect:
            raise StaleVersion(f"the form is at version {held.version if held else 0} now")
        now = _now_us()
        committed = self.forms[key].version if key in self.forms else 0
        version = max(
            now,
            _bounded(self.reserved.get(key, 0)) + 1,
            _bounded(committed) + 1,
            _bounded(floor or 0) + 1,
        )
        if idem is not None:
            self.idempotency[(key, idem)] = f"{_PENDING} {fingerprint}"
        self.reserved[key] = version
        return Reserved(version=version, now_us=now)

    async def get_token_generation(self, staff: bool, subject: str) -> int | None:
        self._check()
        return self.token_generations.get((staff, subject))

    async def put_token_generation(
        self, staff: bool, subject: str, generation: int, ttl_s: int
    ) -> None:
        self._check()
        self.token_generations[(staff, subject)] = generation

    async def commit(self, record: FormRecord, idem: str | None, idem_result: str) -> bool:
        self._check()
        applied = self._apply(record)
        if idem:
            self.idempotency[(record.key, idem)] = idem_result
        return applied

    def _apply(self, record: FormRecord) -> bool:
        if record.version >= VERSION_LIMIT:
            return False
        held = self.forms.get(record.key)
        if held is not None and held.version >= record.version:
            return False
        self.forms[record.key] = record
        return True

    async def fill(self, record: FormRecord) -> bool:
        self._check()
        return self._apply(record)

    async def release_idempotency(self, key: FormKey, idem: str) -> None:
        self._check()
        self.idempotency.pop((key, idem), None)

    async def idempotency_record(self, key: FormKey, idem: str) -> str | None:
        self._check()
        return self.idempotency.get((key, idem))

    async def read(self, key: FormKey) -> FormRecord | None:
        self._check()
        return self.forms.get(key)

    async def get_exam(self, candidate_id: str) -> dict[str, Any] | None:
        self._check()
        return self.exams.get(candidate_id)

    async def put_exam(self, candidate_id: str, exam: dict[str, Any]) -> None:
        self._check()
        self.exams[candidate_id] = exam

    async def put_exams(self, exams: dict[str, dict[str, Any]]) -> None:
        self._check()
        self.exams.update(exams)

    async def ping(self) -> None:
        self._check()


@dataclass
class InMemoryPublisher:
    """``Publisher``: every confirmed record, in publish order."""

    down: bool = False
    published: list[FormRecord] = field(default_factory=list)

    async def publish(self, record: FormRecord) -> None:
        if self.down:
            raise BrokerUnavailable("broker unavailable (in-memory fake set down)")
        self.published.append(record)

    async def ping(self) -> None:
        if self.down:
            raise BrokerUnavailable("broker unavailable (in-memory fake set down)")


@dataclass
class InMemoryHalf:
    """``HalfMessage`` of ``InMemoryHalfPublisher``: ``state`` is half, committed or rolled back."""

    record: FormRecord
    owner: InMemoryHalfPublisher
    state: str = "half"

    async def commit(self) -> None:
        if self.owner.down:
            raise PublishUncertain("broker unavailable (in-memory fake set down)")
        self.state = "committed"

    async def rollback(self) -> None:
        if not self.owner.down:
            self.state = "rolled back"


@dataclass
class InMemoryHalfPublisher:
    """``HalfPublisher``: every half message sent, in order, with its state; ``published``
    are those consumers would get (committed)."""

    down: bool = False
    halves: list[InMemoryHalf] = field(default_factory=list)

    async def publish_half(self, record: FormRecord) -> InMemoryHalf:
        if self.down:
            raise BrokerUnavailable("broker unavailable (in-memory fake set down)")
        half = InMemoryHalf(record, self)
        self.halves.append(half)
        return half

    @property
    def published(self) -> list[FormRecord]:
        return [h.record for h in self.halves if h.state == "committed"]


@dataclass
class InMemoryDatabase:
    """``Database`` (and the importer's ``CandidateSink``, the naive route's store): forms
    upserted only when newer, candidates, exam results, admission batches."""

    down: bool = False
    forms: dict[FormKey, FormRecord] = field(default_factory=dict)
    candidates: dict[str, Candidate] = field(default_factory=dict)
    exams: dict[str, dict[str, Any]] = field(default_factory=dict)
    batches: dict[str, Batch] = field(default_factory=dict)
    naive_forms: dict[FormKey, FormRecord] = field(default_factory=dict)

    def _check(self) -> None:
        if self.down:
            raise DatabaseUnavailable("mysql unavailable (in-memory fake set down)")

    async def get_form(self, key: FormKey) -> FormRecord | None:
        self._check()
        return self.forms.get(key)

    async def upsert_forms(self, records: Sequence[FormRecord]) -> None:
        self._check()
        for record in records:
            held = self.forms.get(record.key)
            if held is None or held.version < record.version:
                self.forms[record.key] = record

    async def get_candidate(self, candidate_id: str) -> Candidate | None:
        self._check()
        return self.candidates.get(candidate_id)

    async def upsert_candidates(self, rows: Sequence[tuple[str, str, str, str]]) -> None:
        self._check()
        for candidate_id, name, school_code, password_hash in rows:
            held = self.candidates.get(candidate_id)
            generation = held.token_generation if held else 0
            if held and (held.password_hash, held.school_code) != (password_hash, school_code):
                generation += 1  # as upsert_candidates: a new password or school revokes
            self.candidates[candidate_id] = Candidate(
                candidate_id, name, school_code, password_hash, generation
            )

    async def token_generation(self, candidate_id: str) -> int | None:
        self._check()
        held = self.candidates.get(candidate_id)
        return None if held is None else held.token_generation

    async def bump_token_generation(self, candidate_id: str) -> None:
        self._check()
        held = self.candidates.get(candidate_id)
        if held is not None:
            self.candidates[candidate_id] = dataclasses.replace(
                held, token_generation=held.token_generation + 1
            )

    async def get_exam(self, candidate_id: str) -> dict[str, Any] | None:
        self._check()
        return self.exams.get(candidate_id)

    async def upsert_exams(self, exams: dict[str, dict[str, Any]]) -> None:
        self._check()
        self.exams.update(exams)

    async def list_batches(self) -> list[Batch]:
        self._check()
        return sorted(self.batches.values(), key=lambda b: b.code)

    async def upsert_batch(self, batch: Batch) -> None:
        self._check()
        self.batches[batch.code] = batch

    async def ping(self) -> None:
        self._check()

    async def create_naive_table(self) -> None:
        self._check()

    async def naive_save_form(self, record: FormRecord) -> int:
        self._check()
        self.naive_forms[record.key] = record
        return record.version
