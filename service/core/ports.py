"""The small interfaces use cases depend on; adapters implement them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from schemas.records import FormKey, FormRecord


@dataclass(frozen=True, slots=True)
class Reserved:
    """A version reserved for a save."""

    version: int
    now_us: int


@dataclass(frozen=True, slots=True)
class Missing:
    """The form is not in Redis: stage it again with the version floor MySQL holds."""


@dataclass(frozen=True, slots=True)
class Replay:
    """The Idempotency-Key was seen before; ``stored`` is what was recorded for it."""

    stored: str


@dataclass(frozen=True, slots=True)
class Candidate:
    candidate_id: str
    name: str
    school_code: str
    password_hash: str
    token_generation: int = 0


@dataclass(frozen=True, slots=True)
class Batch:
    code: str
    name: str
    opens_at: datetime
    closes_at: datetime
    # False: a submitted form stays as submitted until the window closes.
    changes_after_submit: bool = True

    def is_open(self, now: datetime) -> bool:
        return self.opens_at <= now < self.closes_at


class LoginAttempts(Protocol):
    """Login attempts per client address (per account and over all accounts) and of the
    whole service, in windows."""

    async def reserve_login(
        self, client: str, account: str, per_account: int, per_client: int, window_s: int
    ) -> int:
        """Count one attempt and return 0, or, when a limit is reached, count nothing and
        return the seconds until it resets."""

    async def refund_login(self, client: str, account: str) -> None:
        """Uncount an attempt that turned out to be a successful login."""

    async def reserve_global_login(self, limit: int, window_s: int) -> int:
        """Count one attempt of the whole service (every process shares the counter) and
        return 0, or, when the limit is reached, count nothing and return the seconds until
        the window ends."""


class FormCache(Protocol):
    """Redis: the live copy of every form, and the version counter."""

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
        """``floor`` None: Missing when Redis does not hold the form; else the version MySQL
        holds (0: none), which the reserved version exceeds. ``locked``: raise FormSubmitted
        when the form is submitted; ``expect``: raise StaleVersion unless that version is the
        committed one."""

    async def commit(self, record: FormRecord, idem: str | None, idem_result: str) -> bool: ...

    async def release_idempotency(self, key: FormKey, idem: str) -> None: ...

    async def idempotency_record(self, key: FormKey, idem: str) -> str | None:
        """What was recorded for this Idempotency-Key (as ``Replay.stored``), if anything."""

    async def read(self, key: FormKey) -> FormRecord | None: ...

    async def fill(self, record: FormRecord) -> bool: ...

    async def get_exam(self, candidate_id: str) -> dict[str, Any] | None: ...

    async def put_exam(self, candidate_id: str, exam: dict[str, Any]) -> None: ...

    async def ping(self) -> None: ...


class Publisher(Protocol):
    """The broker: returns only once the message is confirmed (fsynced)."""

    async def publish(self, record: FormRecord) -> None: ...

    async def ping(self) -> None: ...


class BatchPublisher(Publisher, Protocol):
    """A broker that also carries several records (same queue) in one confirmed message."""

    async def publish_batch(self, records: Sequence[FormRecord]) -> None:
        """Returns once the one message holding ``records`` is confirmed (fsynced)."""


class HalfMessage(Protocol):
    """A message the broker stored but keeps from consumers until it is committed."""

    async def commit(self) -> None:
        """Raises PublishUncertain when the broker did not answer (its check-back decides)."""

    async def rollback(self) -> None:
        """Never raises: unanswered, the broker's check-back decides."""


class HalfPublisher(Protocol):
    """A broker with transactional messages (RocketMQ): a record is sent as a half message,
    then committed or rolled back; the broker asks back about one left undecided."""

    async def publish_half(self, record: FormRecord) -> HalfMessage:
        """Returns once the half message is stored (fsynced); BrokerUnavailable otherwise."""


class Database(Protocol):
    """MySQL: the durable copy, written by consumers, read on cache misses."""

    async def get_form(self, key: FormKey) -> FormRecord | None: ...

    async def upsert_forms(self, records: Sequence[FormRecord]) -> None: ...

    async def get_candidate(self, candidate_id: str) -> Candidate | None: ...

    async def get_exam(self, candidate_id: str) -> dict[str, Any] | None: ...

    async def token_generation(self, candidate_id: str) -> int | None:
        """The candidate's token generation (None: no such candidate)."""

    async def bump_token_generation(self, candidate_id: str) -> None: ...

    async def list_batches(self) -> list[Batch]: ...

    async def ping(self) -> None: ...


class Inbound(Protocol):
    """A message delivered to a consumer."""

    @property
    def headers(self) -> Mapping[str, Any]: ...

    @property
    def body(self) -> bytes: ...

    async def ack(self) -> None: ...

    async def dead_letter(self, reason: str) -> None:
        """Park it in the dead-letter queue with ``reason``, then ack it."""

    async def dead_letter_part(self, headers: Mapping[str, Any], body: bytes, reason: str) -> None:
        """Park one record of a batch message (given as a message of its own) in the
        dead-letter queue with ``reason``; the delivery itself stays unacked."""

    async def requeue(self) -> None:
        """Hand it back to the broker for redelivery (counted against the delivery limit)."""
