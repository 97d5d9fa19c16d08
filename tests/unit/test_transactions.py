"""Transactional saves (RocketMQ half messages) on in-memory fakes: the half message's fate
follows the Redis commit, and a check-back's answer follows what Redis (or MySQL) holds. (On
the real broker, with orphans and check-backs: tests/integration/test_rocketmq_transactions.py.)
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from schemas.http import FormBody, parse_form
from schemas.records import FormKey, FormRecord
from service.core.errors import PublishUncertain, StoreUnavailable
from service.core.ports import Batch
from service.forms.fakes import (
    InMemoryDatabase,
    InMemoryFormCache,
    InMemoryHalfPublisher,
    InMemoryPublisher,
)
from service.forms.save import Forms
from service.forms.transactions import committed
from service.forms.windows import BatchWindows
from tests.support import DEMO_ID, OPEN_BATCH, choices

KEY = FormKey(DEMO_ID, OPEN_BATCH)
NOW = datetime.now()


def form(salt: int = 0) -> FormBody:
    return parse_form({"choices": choices(2, salt)})


class RefusingCache(InMemoryFormCache):
    """Redis that stages but refuses the commit; ``applied`` makes it apply it first (the
    answer lost after the write)."""

    refuse = False
    applied = False

    async def commit(self, record: FormRecord, idem: str | None, idem_result: str) -> bool:
        if not self.refuse:
            return await super().commit(record, idem, idem_result)
        if self.applied:
            await super().commit(record, idem, idem_result)
        raise StoreUnavailable("commit refused (test)")


class Parts:
    def __init__(self) -> None:
        self.cache = RefusingCache()
        self.halves = InMemoryHalfPublisher()
        self.db = InMemoryDatabase()
        self.db.batches[OPEN_BATCH] = Batch(
            OPEN_BATCH, "Open", NOW - timedelta(days=1), NOW + timedelta(days=1)
        )
        self.plain = InMemoryPublisher()
        windows = BatchWindows(self.db, 60.0)
        self.forms = Forms(self.cache, self.plain, self.db, windows, halves=self.halves)


@pytest.fixture
def parts() -> Parts:
    return Parts()


async def test_a_save_commits_its_half_message_after_the_redis_commit(parts: Parts) -> None:
    saved = await parts.forms.save(KEY, form(), "k1", NOW)
    assert [h.state for h in parts.halves.halves] == ["committed"]
    assert parts.halves.published[0].version == saved.version
    assert parts.plain.published == []  # nothing goes the plain way
    assert (await parts.forms.read(KEY)).version == saved.version


async def test_a_refused_redis_commit_rolls_the_half_message_back(parts: Parts) -> None:
    parts.cache.refuse = True
    with pytest.raises(StoreUnavailable):
        await parts.forms.save(KEY, form(), "k2", NOW)
    assert [h.state for h in parts.halves.halves] == ["rolled back"]
    assert await parts.cache.read(KEY) is None
    assert (KEY, "k2") not in parts.cache.idempotency  # a retry saves anew


async def test_a_commit_that_happened_despite_the_error_is_committed(parts: Parts) -> None:
    parts.cache.refuse = parts.cache.applied = True
    saved = await parts.forms.save(KEY, form(), "k3", NOW)
    assert [h.state for h in parts.halves.halves] == ["committed"]
    assert (await parts.forms.read(KEY)).version == saved.version


async def test_redis_unreadable_leaves_the_half_message_to_the_check_back(parts: Parts) -> None:
    class Unreadable(RefusingCache):
        async def read(self, key: FormKey) -> FormRecord | None:
            raise StoreUnavailable("down (test)")

    parts.cache = Unreadable()
    parts.cache.refuse = True
    parts.forms = Forms(
        parts.cache, parts.plain, parts.db, BatchWindows(parts.db, 60.0), halves=parts.halves
    )
    with pytest.raises(StoreUnavailable):
        await parts.forms.save(KEY, form(), "k4", NOW)
    assert [h.state for h in parts.halves.halves] == ["half"]
    assert (KEY, "k4") in parts.cache.idempotency  # still pending: a retry is told so


async def test_an_unanswered_commit_is_uncertain_but_visible(parts: Parts) -> None:
    halves = parts.halves

    class ThenTheBrokerGoes(RefusingCache):
        async def commit(self, record: FormRecord, idem: str | None, idem_result: str) -> bool:
            applied = await super().commit(record, idem, idem_result)
            halves.down = True
            return applied

    parts.cache = ThenTheBrokerGoes()
    forms = Forms(parts.cache, parts.plain, parts.db, BatchWindows(parts.db, 60.0), halves=halves)
    with pytest.raises(PublishUncertain):
        await forms.save(KEY, form(), "k5", NOW)
    assert [h.state for h in halves.halves] == ["half"]  # the check-back commits it
    assert await committed(parts.cache, parts.db, halves.halves[0].record) is True


async def test_the_check_back_answer_follows_what_the_stores_hold(parts: Parts) -> None:
    saved = await parts.forms.save(KEY, form(1), None, NOW)
    record = parts.halves.published[0]
    assert await committed(parts.cache, parts.db, record) is True
    other = FormRecord(KEY.candidate_id, KEY.batch, saved.version + 1, 1, "saved", b"")
    assert await committed(parts.cache, parts.db, other) is False  # Redis holds another one
    parts.cache.down = True
    assert await committed(parts.cache, parts.db, other) is None  # nobody can tell
    await parts.db.upsert_forms([record])
    assert await committed(parts.cache, parts.db, record) is True  # MySQL holds it
    parts.db.down = True
    assert await committed(parts.cache, parts.db, record) is None
