"""MySQL split over two databases by candidate shard: the shard map, where rows land, the
import, a shard that goes down while consumers write, the catalogue on every shard."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import gzip
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest

from schemas.records import STATUS_SAVED, FormKey, FormRecord
from service.core import codec
from service.core.errors import DatabaseUnavailable
from service.core.ids import make_id, shard_of
from service.core.settings import Settings
from service.imports.gendata import write_candidates
from service.storage.mysql_db import MySQLDatabase, MySQLTarget, connect_one
from service.storage.mysql_parts import open_database
from service.storage.mysql_shards import ShardedDatabase, ShardMap, for_dsn
from service.storage.redis_cache import RedisCache
from tests.harness import isolated
from tests.proxy import Proxy
from tests.support import DEMO_ID, OPEN_BATCH, choices, settings_env


def test_shard_map_parses_ranges_and_shared_databases() -> None:
    m = ShardMap.parse("128-255=mysql://b/x, 0-63=mysql://a/x,64-127=mysql://c/x", 256)
    assert [m.target_of(s) for s in (0, 63, 64, 127, 128, 255)] == [
        "mysql://a/x",
        "mysql://a/x",
        "mysql://c/x",
        "mysql://c/x",
        "mysql://b/x",
        "mysql://b/x",
    ]
    shared = ShardMap.parse("0-99=mysql://a/x,100-199=mysql://b/x,200-255=mysql://a/x", 256)
    assert shared.dsns == ["mysql://a/x", "mysql://b/x"]
    assert ShardMap.parse("0=mysql://a/x,1-3=mysql://b/x", 4).target_of(0) == "mysql://a/x"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0-100=mysql://a/x,120-255=mysql://b/x", "shard 101 is next"),  # gap
        ("0-130=mysql://a/x,128-255=mysql://b/x", "shard 131 is next"),  # overlap
        ("0-127=mysql://a/x", "expected 255"),  # short
        ("1-255=mysql://a/x", "shard 0 is next"),
        ("0-255", "expected LOW-HIGH=DSN"),
        ("a-b=mysql://a/x", "expected LOW-HIGH=DSN"),
        ("0-255=", "expected LOW-HIGH=DSN"),
    ],
)
def test_shard_map_refuses_maps_that_do_not_cover_every_shard_once(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ShardMap.parse(text, 256)


def _record(candidate_id: str, version: int, salt: int = 0) -> FormRecord:
    return FormRecord(
        candidate_id, OPEN_BATCH, version, version, STATUS_SAVED, codec.pack(choices(1, salt))
    )


def _on_both_shards(count: int) -> list[str]:
    """Candidates, half of them in shards 0-127 and half in 128-255."""
    low: list[str] = []
    high: list[str] = []
    sequence = 0
    while len(low) < count // 2 or len(high) < count // 2:
        cid = make_id(320102, f"200701{1 + sequence // 1000 % 28:02d}", sequence % 1000)
        sequence += 1
        side = low if shard_of(cid, 256) < 128 else high
        if len(side) < count // 2:
            side.append(cid)
    return low + high


@asynccontextmanager
async def _parts(settings: Settings) -> AsyncIterator[list[tuple[range, MySQLDatabase]]]:
    """Each database of the run's shard map on its own, with the shards it should hold."""
    shard_map = ShardMap.parse(settings.mysql_shards, settings.shards)
    async with AsyncExitStack() as stack:
        out = []
        for low, high, dsn in zip(shard_map.lows, shard_map.highs, shard_map.targets, strict=True):
            part = await stack.enter_async_context(connect_one(for_dsn(settings, dsn)))
            out.append((range(low, high + 1), part))
        yield out


async def test_forms_live_only_on_their_shards_database(
    settings: Settings, db: ShardedDatabase
) -> None:
    assert isinstance(db, ShardedDatabase) and len(db.parts) == 2
    ids = _on_both_shards(40)
    await db.upsert_forms([_record(cid, 1_000 + i) for i, cid in enumerate(ids)])
    async with _parts(settings) as parts:
        for cid in ids:
            key = FormKey(cid, OPEN_BATCH)
            held = [await part.get_form(key) is not None for _, part in parts]
            owner = [shard_of(cid, settings.shards) in shards for shards, _ in parts]
            assert held == owner, cid
    for i, cid in enumerate(ids):
        record = await db.get_form(FormKey(cid, OPEN_BATCH))
        assert record is not None and record.version == 1_000 + i


async def test_older_versions_leave_rows_alone_on_every_shard(db: ShardedDatabase) -> None:
    ids = _on_both_shards(10)
    newer = [_record(cid, 2_000, salt=1) for cid in ids]
    older = [_record(cid, 1_999, salt=2) for cid in ids]
    await db.upsert_forms(newer)
    await db.upsert_forms(older + newer[:3])  # late redeliveries mixed with duplicates
    for record in newer:
        assert await db.get_form(record.key) == record


async def test_bulk_load_routes_candidates_and_exams_by_shard(
    settings: Settings, db: ShardedDatabase, cache: RedisCache
) -> None:
    """What an import writes per batch: candidates and exam results to MySQL, exam results to
    Redis in one pipeline across many cluster slots."""
    ids = _on_both_shards(300)
    await db.upsert_candidates([(cid, f"N{cid[-4:]}", "110105001", "hash") for cid in ids])
    exams = {
        cid: {"total_score": 500.0 + i, "rank": i + 1, "subjects": {"math": 100 + i % 50}}
        for i, cid in enumerate(ids)
    }
    await db.upsert_exams(exams)
    await cache.put_exams(exams)

    async with _parts(settings) as parts:
        for cid in ids:
            held = [await part.get_candidate(cid) is not None for _, part in parts]
            owner = [shard_of(cid, settings.shards) in shards for shards, _ in parts]
            assert held == owner, cid
            held = [await part.get_exam(cid) is not None for _, part in parts]
            assert held == owner, cid
    for cid in ids:
        assert await cache.get_exam(cid) == exams[cid] == await db.get_exam(cid)


async def test_volreg_import_routes_candidates_by_shard(
    settings: Settings, db: ShardedDatabase, cache: RedisCache, tmp_path: Path
) -> None:
    """`volreg import` end to end on the cluster topology: every candidate of the file lands
    on its shard's database only, with its exam results in MySQL and in the Redis Cluster."""
    generated = tmp_path / "generated.csv.gz"
    write_candidates(generated, 401, 20, seed=23)
    # Without the demo candidate, whom the other suites log in as with their own fixtures.
    with gzip.open(generated, "rt", encoding="utf-8", newline="") as fh:
        lines = [ln for ln in fh if not ln.startswith(DEMO_ID)]
    source = tmp_path / "candidates.csv.gz"
    with gzip.open(source, "wt", encoding="utf-8", newline="") as out:
        out.writelines(lines)
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "service.main.cli", "import", str(source), "--fresh"],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]

    with gzip.open(source, "rt", encoding="utf-8", newline="") as fh:
        ids = [row["candidate_id"] for row in csv.DictReader(fh)]
    assert len(ids) == 400
    async with _parts(settings) as parts:
        for cid in ids:
            held = [await part.get_candidate(cid) is not None for _, part in parts]
            owner = [shard_of(cid, settings.shards) in shards for shards, _ in parts]
            assert held == owner, cid
    for cid in ids:
        exam = await db.get_exam(cid)
        assert exam is not None and await cache.get_exam(cid) == exam


@asynccontextmanager
async def _through_proxy(settings: Settings, index: int) -> AsyncIterator[tuple[Settings, Proxy]]:
    """The run's settings with database ``index`` of the shard map behind a cuttable proxy."""
    shard_map = ShardMap.parse(settings.mysql_shards, settings.shards)
    dsn = shard_map.dsns[index]
    target = MySQLTarget.parse(dsn)
    proxy = Proxy(target.host, target.port)
    await proxy.start()
    try:
        rewired = settings.mysql_shards.replace(dsn, proxy.url(dsn))
        yield dataclasses.replace(settings, mysql_shards=rewired), proxy
    finally:
        await proxy.cut()


async def test_a_shard_down_holds_its_rows_in_the_queue_until_it_is_back(
    settings: Settings, cache: RedisCache
) -> None:
    async with (
        _through_proxy(settings, 1) as (proxied, proxy),
        open_database(proxied) as db,
        isolated(proxied, db, cache) as harness,
    ):
        ids = _on_both_shards(8)
        for i, cid in enumerate(ids):
            await harness.broker.publish(_record(cid, 3_000 + i))
        deliveries = await harness.take(len(ids))

        await proxy.cut()
        with pytest.raises(DatabaseUnavailable):
            await db.ping()
        writing = asyncio.create_task(harness.writer.apply(deliveries), name="test-apply")
        await asyncio.sleep(1.0)
        assert not writing.done(), "the batch must wait for the missing shard, unacked"
        low_side = ids[: len(ids) // 2]
        for i, cid in enumerate(low_side):  # the healthy shard took its rows already
            assert isinstance(db, ShardedDatabase)
            record = await db.part_of(cid).get_form(FormKey(cid, OPEN_BATCH))
            assert record is not None and record.version == 3_000 + i

        await proxy.restore()
        await asyncio.wait_for(writing, timeout=30)
        for i, cid in enumerate(ids):
            record = await db.get_form(FormKey(cid, OPEN_BATCH))
            assert record is not None and record.version == 3_000 + i
        await harness.assert_no_more()


async def test_catalogue_is_on_every_shard_and_read_from_any_that_answers(
    settings: Settings, db: ShardedDatabase
) -> None:
    expected = await db.list_batches()
    assert expected, "the session fixture publishes batches"
    async with _parts(settings) as parts:
        for _, part in parts:
            assert await part.list_batches() == expected
    async with (
        _through_proxy(settings, 0) as (proxied, proxy),
        open_database(proxied) as first_down,
    ):
        await proxy.cut()
        assert await first_down.list_batches() == expected
