"""The save use case step by step, on in-memory fakes of Redis, the broker and MySQL: what is
visible after each kind of failure, versions, replays of an Idempotency-Key, read-through,
filing windows. (Durability and ordering across real servers: tests/integration.)"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from schemas.http import FormBody, parse_form
from schemas.records import FormKey, FormRecord
from service.core.errors import (
    BrokerUnavailable,
    DatabaseUnavailable,
    NotFound,
    RequestInProgress,
    ValidationFailed,
    WindowClosed,
)
from service.core.ports import Batch
from service.forms.fakes import InMemoryDatabase, InMemoryFormCache, InMemoryPublisher
from service.forms.save import Forms, choices_of
from service.forms.windows import BatchWindows
from tests.support import DEMO_ID, OPEN_BATCH, choices

KEY = FormKey(DEMO_ID, OPEN_BATCH)
NOW = datetime.now()


def form(n: int = 2, salt: int = 0) -> FormBody:
    return parse_form({"choices": choices(n, salt)})


class Parts:
    def __init__(self) -> None:
        self.cache = InMemoryFormCache()
        self.broker = InMemoryPublisher()
        self.db = InMemoryDatabase()
        self.db.batches[OPEN_BATCH] = Batch(
            OPEN_BATCH, "Open", NOW - timedelta(days=1), NOW + timedelta(days=1)
        )
        self.db.batches["closed"] = Batch(
            "closed", "Closed", NOW - timedelta(days=2), NOW - timedelta(days=1)
        )
        self.forms = Forms(self.cache, self.broker, self.db, BatchWindows(self.db, 60.0))


@pytest.fixture
def parts() -> Parts:
    return Parts()


async def test_a_save_is_published_then_visible(parts: Parts) -> None:
    saved = await parts.forms.save(KEY, form(3, 1), None, NOW)
    assert [r.version for r in parts.broker.published] == [saved.version]
    record = await parts.forms.read(KEY)
    assert record.version == saved.version
    assert choices_of(record) == choices(3, 1)


async def test_versions_grow_with_every_save(parts: Parts) -> None:
    versions = [(await parts.forms.save(KEY, form(1, i), None, NOW)).version for i in range(5)]
    assert versions == sorted(set(versions))


async def test_broker_down_leaves_nothing_visible_and_frees_the_key(parts: Parts) -> None:
    parts.broker.down = True
    with pytest.raises(BrokerUnavailable):
        await parts.forms.save(KEY, form(), "idem-1", NOW)
    assert await parts.cache.read(KEY) is None
    assert (KEY, "idem-1") not in parts.cache.idempotency
    parts.broker.down = False
    saved = await parts.forms.save(KEY, form(), "idem-1", NOW)  # the retry is a new save
    assert (await parts.forms.read(KEY)).version == saved.version


async def test_a_replay_returns_the_first_result(parts: Parts) -> None:
    first = await parts.forms.save(KEY, form(2, 4), "idem-2", NOW)
    again = await parts.forms.save(KEY, form(2, 4), "idem-2", NOW)
    assert again == first
    assert len(parts.broker.published) == 1


async def test_a_replay_with_another_body_is_refused(parts: Parts) -> None:
    await parts.forms.save(KEY, form(2, 4), "idem-3", NOW)
    with pytest.raises(ValidationFailed) as caught:
        await parts.forms.save(KEY, form(2, 5), "idem-3", NOW)
    assert caught.value.details == [
        {"path": "header.Idempotency-Key", "message": "reused with another body"}
    ]


async def test_a_replay_while_the_first_is_in_flight_is_told_so(parts: Parts) -> None:
    body = form(2, 6)
    fingerprint_of_first: str | None = None

    class Stalled(InMemoryPublisher):
        async def publish(self, record: FormRecord) -> None:
            nonlocal fingerprint_of_first
            fingerprint_of_first = parts.cache.idempotency[(KEY, "idem-4")]
            with pytest.raises(RequestInProgress):
                await parts.forms.save(KEY, body, "idem-4", NOW)
            await super().publish(record)

    parts.forms = Forms(parts.cache, Stalled(), parts.db, BatchWindows(parts.db, 60.0))
    await parts.forms.save(KEY, body, "idem-4", NOW)
    assert fingerprint_of_first is not None and fingerprint_of_first.startswith("pending ")


async def test_an_older_commit_does_not_overwrite_a_newer_one(parts: Parts) -> None:
    newer = await parts.forms.save(KEY, form(1, 1), None, NOW)
    older = parts.broker.published[0]
    stale = FormRecord(KEY.candidate_id, KEY.batch, older.version - 1, 0, older.status, b"")
    assert not await parts.cache.commit(stale, None, "")
    assert (await parts.forms.read(KEY)).version == newer.version


async def test_read_falls_back_to_mysql_and_refills(parts: Parts) -> None:
    await parts.forms.save(KEY, form(2, 2), None, NOW)
    record = parts.broker.published[-1]
    await parts.db.upsert_forms([record])
    parts.cache.forms.clear()
    assert (await parts.forms.read(KEY)).version == record.version
    assert parts.cache.forms[KEY] == record  # refilled
    parts.cache.down = True
    assert (await parts.forms.read(KEY)).version == record.version  # Redis down: MySQL


async def test_nothing_saved_is_not_found(parts: Parts) -> None:
    with pytest.raises(NotFound):
        await parts.forms.read(KEY)


async def test_filing_windows(parts: Parts) -> None:
    with pytest.raises(WindowClosed):
        await parts.forms.save(FormKey(DEMO_ID, "closed"), form(), None, NOW)
    with pytest.raises(NotFound):
        await parts.forms.save(FormKey(DEMO_ID, "no-such-batch"), form(), None, NOW)
    assert parts.broker.published == []


async def test_windows_keep_the_last_good_batches_while_mysql_is_down(parts: Parts) -> None:
    windows = BatchWindows(parts.db, 0.0)
    assert (await windows.get(OPEN_BATCH)).code == OPEN_BATCH
    parts.db.down = True
    assert (await windows.get(OPEN_BATCH)).code == OPEN_BATCH
    with pytest.raises(DatabaseUnavailable):
        await BatchWindows(parts.db, 0.0).get(OPEN_BATCH)  # nothing loaded yet
