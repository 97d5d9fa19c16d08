"""Versions and forms across trust boundaries, against the real Redis, RabbitMQ and MariaDB:
out-of-range versions are refused (never a frozen form behind 200s), the reconciler copies
only sound forms into MySQL, and a form Redis lost gets versions above MySQL's."""

from __future__ import annotations

import time
from datetime import datetime
from itertools import count
from typing import Any

import pytest

from reconciler.model import MODE_FULL
from reconciler.mysql_archive import open_archive
from reconciler.redis_index import open_index
from reconciler.run import Reconciler
from schemas.http import parse_form
from schemas.records import STATUS_SAVED, FormKey, FormRecord
from service.core import codec
from service.core.errors import VersionAhead
from service.core.ids import make_id, shard_of
from service.core.names import names_of
from service.core.settings import Settings
from service.core.versions import VERSION_LIMIT
from service.storage.mysql_db import MySQLDatabase
from service.storage.redis_cache import RedisCache
from tests.harness import isolated
from tests.support import OPEN_BATCH, choices, wait_for_mysql

_serial = count(1)
HUGE = 2**60


def _key() -> FormKey:
    return FormKey(make_id(530102, "20070505", next(_serial)), OPEN_BATCH)


def _now_us() -> int:
    return int(time.time() * 1_000_000)


async def _plant(cache: RedisCache, settings: Settings, key: FormKey, **fields: Any) -> None:
    """Write a form hash into Redis the way only someone with Redis access could."""
    payload = codec.pack(choices(2))
    values = {"v": 1, "r": 1, "t": _now_us(), "s": STATUS_SAVED, "n": 1, "c": payload} | fields
    await cache.client.hset(names_of(settings).form_key(key), mapping=values)  # type: ignore[arg-type]


async def test_a_version_beyond_2_53_is_replaced_not_a_frozen_form(
    settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    key = _key()
    await _plant(cache, settings, key, v=HUGE, r=HUGE)
    async with isolated(settings, db, cache) as h:
        for salt in (1, 2):
            form = parse_form({"choices": choices(3, salt)})
            saved = await h.forms.save(key, form, None, datetime.now())
            assert 0 < saved.version < VERSION_LIMIT
            # Visible at once: the stored 2^60 did not swallow the save.
            held = await cache.read(key)
            assert held is not None and held.version == saved.version
            assert codec.unpack(held.payload) == choices(3, salt)
            await h.writer.apply(await h.take(1))
        assert (await wait_for_mysql(db, key, saved.version)).version == saved.version


async def test_a_version_far_ahead_of_the_clock_is_refused_with_nothing_published(
    settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    key = _key()
    ahead = _now_us() + (settings.version_max_ahead_s + 3600) * 1_000_000
    await _plant(cache, settings, key, v=ahead, r=ahead)
    async with isolated(settings, db, cache) as h:
        with pytest.raises(VersionAhead):
            await h.forms.save(key, parse_form({"choices": choices(2)}), "k1", datetime.now())
        await h.assert_no_more()
    held = await cache.read(key)
    assert held is not None and held.version == ahead


@pytest.mark.parametrize("version", [VERSION_LIMIT, HUGE, 0, -5, "ahead"])
async def test_consumer_refuses_out_of_range_versions(
    settings: Settings, db: MySQLDatabase, cache: RedisCache, version: int | str
) -> None:
    key = _key()
    if version == "ahead":
        version = _now_us() + (settings.version_max_ahead_s + 3600) * 1_000_000
    assert isinstance(version, int)
    bad = FormRecord(key.candidate_id, key.batch, version, 1, STATUS_SAVED, codec.pack([1]))
    async with isolated(settings, db, cache) as h:
        names = names_of(h.settings)
        await h.broker.publish(bad)
        await h.writer.apply(await h.take(1))
        assert await db.get_form(key) is None
        channel = await h.broker.connection().channel()
        dlq = await channel.get_queue(names.dead_letter_queue)
        message = await dlq.get(timeout=5, fail=True)
        assert message is not None
        assert "version" in str(message.headers["x-volreg-reason"])
        await message.ack()
        await channel.close()
        # The form is not blocked: the next real save lands in MySQL.
        saved = await h.forms.save(key, parse_form({"choices": choices(1)}), None, datetime.now())
        await h.writer.apply(await h.take(1))
        assert (await wait_for_mysql(db, key, saved.version)).version == saved.version


async def test_reconciler_copies_only_sound_forms_into_mysql(
    settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    # Same shard for all, older than the grace period: each would be "Redis ahead, repair".
    shard = 7
    ids = (make_id(530102, f"200706{day:02d}", seq) for day in range(1, 29) for seq in range(999))
    keys = [FormKey(i, OPEN_BATCH) for i in ids if shard_of(i, settings.shards) == shard]
    good, huge, garbage, bad_choices, bad_status = keys[:5]
    old = _now_us() - 7200 * 1_000_000
    await _plant(cache, settings, good, v=old, r=old, t=old)
    await _plant(cache, settings, huge, v=HUGE, r=HUGE, t=old)
    await _plant(cache, settings, garbage, v=old, r=old, t=old, c=b"\x1f\x8bnot gzip")
    not_a_form = codec.pack([{"institution": "x", "majors": [], "sql": "drop"}])
    await _plant(cache, settings, bad_choices, v=old, r=old, t=old, c=not_a_form)
    await _plant(cache, settings, bad_status, v=old, r=old, t=old, s="admin")
    for key in keys[:5]:
        await cache.client.zadd(
            names_of(settings).changes_key(shard), {names_of(settings).form_key(key): old}
        )
    async with open_index(settings, names_of(settings)) as index, open_archive(settings) as archive:
        report = await Reconciler(index, archive, settings).run(MODE_FULL, shard)
    assert report.repaired_mysql >= 1
    assert (await db.get_form(good)) is not None
    for refused in (huge, garbage, bad_choices, bad_status):
        assert await db.get_form(refused) is None, refused
        assert f"{refused.candidate_id}:{refused.batch}" in report.unrepaired_keys


async def test_a_form_redis_lost_gets_a_version_above_mysqls(
    settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    """Redis' clock stepped back (or a failover lost the form): MySQL holds a version an hour
    ahead of Redis TIME and Redis does not hold the form at all."""
    key = _key()
    ahead = _now_us() + 3600 * 1_000_000
    await db.upsert_forms(
        [
            FormRecord(
                key.candidate_id, key.batch, ahead, ahead, STATUS_SAVED, codec.pack(choices(1))
            )
        ]
    )
    async with isolated(settings, db, cache) as h:
        saved = await h.forms.save(key, parse_form({"choices": choices(4)}), None, datetime.now())
        assert saved.version > ahead
        await h.writer.apply(await h.take(1))
    stored = await wait_for_mysql(db, key, saved.version)
    assert codec.unpack(stored.payload) == choices(4)
