"""The reconciler on a Redis Cluster and MySQL split over two databases: drift on forms of both
shards is found and repaired, and a full sweep refills a Redis that lost the forms."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from reconciler.command import reconcile_once
from reconciler.model import MODE_FULL
from schemas.records import STATUS_SAVED, FormKey, FormRecord
from service.core import codec
from service.core.ids import make_id, shard_of
from service.core.names import names_of
from service.core.settings import Settings
from service.storage.mysql_shards import ShardedDatabase
from service.storage.redis_cache import RedisCache
from tests.support import OPEN_BATCH, choices


def _record(candidate_id: str, version: int) -> FormRecord:
    payload = codec.pack(choices(2, version % 97))
    return FormRecord(candidate_id, OPEN_BATCH, version, version, STATUS_SAVED, payload)


@pytest.fixture
def candidates(settings: Settings) -> list[str]:
    """Six candidates of this module only, three on each database of the shard map."""
    low: list[str] = []
    high: list[str] = []
    for sequence in range(1000):
        cid = make_id(530102, "20070606", sequence)
        side = low if shard_of(cid, settings.shards) < settings.shards // 2 else high
        if len(side) < 3:
            side.append(cid)
        if len(low) == len(high) == 3:
            return low + high
    raise AssertionError("not enough candidates on both halves")


@pytest.fixture
async def clean(
    settings: Settings, cache: RedisCache, candidates: list[str]
) -> AsyncIterator[None]:
    yield
    names = names_of(settings)
    keys = [names.form_key(FormKey(cid, OPEN_BATCH)) for cid in candidates]
    await cache.client.delete(*keys)


async def _reconcile(settings: Settings, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    code = await reconcile_once(settings, MODE_FULL, None)
    report = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0, report
    return dict(report)


async def test_mysql_ahead_of_redis_is_repaired_on_both_shards(
    settings: Settings,
    db: ShardedDatabase,
    cache: RedisCache,
    candidates: list[str],
    clean: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The crash window: the broker confirmed (the consumer wrote MySQL), Redis never committed.
    for i, cid in enumerate(candidates):
        assert await cache.fill(_record(cid, 1_000 + i))
        await db.upsert_forms([_record(cid, 2_000 + i)])

    await _reconcile(settings, capsys)
    for i, cid in enumerate(candidates):
        assert await cache.read(FormKey(cid, OPEN_BATCH)) == _record(cid, 2_000 + i)


async def test_full_sweep_refills_forms_redis_lost_from_both_shards(
    settings: Settings,
    db: ShardedDatabase,
    cache: RedisCache,
    candidates: list[str],
    clean: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for i, cid in enumerate(candidates):
        await db.upsert_forms([_record(cid, 3_000 + i)])
    assert all([await cache.read(FormKey(cid, OPEN_BATCH)) is None for cid in candidates])

    await _reconcile(settings, capsys)
    for i, cid in enumerate(candidates):
        assert await cache.read(FormKey(cid, OPEN_BATCH)) == _record(cid, 3_000 + i)
