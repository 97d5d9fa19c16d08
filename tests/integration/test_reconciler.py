"""The reconciler against the real Redis, RabbitMQ and MariaDB: crash windows, grace period,
compare-and-set repairs, incremental and full runs, the run lock, reports and exit codes."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
from prometheus_client import generate_latest

from loadtest.cluster_local import free_port
from reconciler.command import EXIT_BUSY, EXIT_DRIFT, reconcile_once
from reconciler.metrics import ReconcileMetrics
from reconciler.model import (
    MODE_FULL,
    MODE_INCREMENTAL,
    OUTCOME_DRIFT,
    OUTCOME_OK,
    Stamp,
    Verdict,
    judge,
)
from reconciler.mysql_archive import FormArchive, open_archive
from reconciler.redis_index import FormIndex, open_index
from reconciler.run import LockBusy, Reconciler
from schemas import urls
from schemas.http import parse_form
from schemas.records import STATUS_SAVED, FormKey, FormRecord
from service.accounts.login import ROLE_ADMIN
from service.core import codec
from service.core.ids import make_id, shard_of
from service.core.names import names_of
from service.core.ports import Batch, Reserved
from service.core.settings import Settings
from service.core.tokens import Claims, TokenSigner
from service.main.wiring import create_staff_account
from service.storage.mysql_db import MySQLDatabase
from service.storage.mysql_migrate import drop_database, migrate
from service.storage.mysql_parts import open_database
from tests.conftest import ClientFactory
from tests.harness import Harness, isolated
from tests.staff_support import STAFF_PASSWORD
from tests.support import (
    OPEN_BATCH,
    RUN,
    TEST_MYSQL,
    choices,
    make_settings,
    settings_env,
    start_volreg,
)

# Tests here run one after another and share this database and key prefix of their own, so
# that full runs see only the forms written by this module.


@pytest.fixture(scope="module")
async def rs() -> AsyncIterator[Settings]:
    s = make_settings(
        key_prefix=f"t{RUN}rc",
        mysql_dsn=f"{TEST_MYSQL}/volreg_test_{RUN}_rc",
        shards=16,
        reconcile_overlap_s=0.0,
        reconcile_grace_s=3600.0,
        reconcile_batch=7,  # several pages and chunks even with a handful of forms
    )
    await migrate(s)
    async with open_database(s) as db:
        now = datetime.now()
        await db.upsert_batch(
            Batch(OPEN_BATCH, "open", now - timedelta(days=1), now + timedelta(days=9))
        )
    yield s
    await drop_database(s)
    async with open_index(s, names_of(s)) as index:
        await _flush(index, s)


@pytest.fixture(scope="module")
async def db(rs: Settings) -> AsyncIterator[MySQLDatabase]:
    async with open_database(rs) as database:
        assert isinstance(database, MySQLDatabase)
        yield database


@pytest.fixture(scope="module")
async def index(rs: Settings) -> AsyncIterator[FormIndex]:
    async with open_index(rs, names_of(rs)) as i:
        yield i


@pytest.fixture(scope="module")
async def archive(rs: Settings) -> AsyncIterator[FormArchive]:
    async with open_archive(rs) as a:
        yield a


@pytest.fixture
async def harness(rs: Settings, db: MySQLDatabase, index: FormIndex) -> AsyncIterator[Harness]:
    async with isolated(rs, db, index) as h:
        yield h


async def _flush(index: FormIndex, s: Settings) -> None:
    """What a Redis restart without persistence does, to this module's keys."""
    keys = [k async for k in index.client.scan_iter(match=f"{{{s.key_prefix}:*", count=1000)]
    if keys:
        await index.client.delete(*keys)


_serial = iter(range(1, 1000))


def _key() -> FormKey:
    return FormKey(make_id(370102, "20070909", next(_serial)), OPEN_BATCH)


async def _save(h: Harness, key: FormKey, salt: int) -> int:
    """A whole save, consumed into MySQL; returns its version."""
    saved = await h.forms.save(key, parse_form({"choices": choices(2, salt)}), None, datetime.now())
    await h.writer.apply(await h.take(1))
    return saved.version


async def _stage(index: FormIndex, key: FormKey, salt: int) -> FormRecord:
    payload = codec.pack(choices(3, salt))
    staged = await index.stage(key, None, hashlib.sha256(payload).hexdigest()[:32], floor=0)
    assert isinstance(staged, Reserved)
    return FormRecord(
        key.candidate_id, key.batch, staged.version, staged.now_us, STATUS_SAVED, payload
    )


def _reconciler(index: FormIndex, archive: FormArchive, s: Settings, **kw: Any) -> Reconciler:
    return Reconciler(index, archive, dataclasses.replace(s, **kw) if kw else s)


@pytest.mark.parametrize(
    ("redis", "mysql", "verdict"),
    [
        (Stamp(5, 100), Stamp(5, 100), Verdict.SAME),
        (None, None, Verdict.SAME),
        (Stamp(5, 100), Stamp(7, 100), Verdict.REDIS_STALE),
        (None, Stamp(7, 100), Verdict.REDIS_STALE),
        (Stamp(9, 950), Stamp(7, 100), Verdict.IN_GRACE),
        (Stamp(9, 850), Stamp(7, 100), Verdict.MYSQL_STALE),
        (Stamp(9, 850), None, Verdict.MYSQL_STALE),
    ],
)
def test_newer_version_wins_and_redis_ahead_waits_for_the_grace_period(
    redis: Stamp | None, mysql: Stamp | None, verdict: Verdict
) -> None:
    assert judge(redis, mysql, now_us=1000, grace_us=100) is verdict


async def test_crash_after_broker_confirm_before_redis_commit_is_repaired_in_redis(
    harness: Harness, index: FormIndex, archive: FormArchive, db: MySQLDatabase, rs: Settings
) -> None:
    key = _key()
    await _save(harness, key, 1)
    # The service dies between the confirm and the commit: staged, published, never committed.
    crashed = await _stage(index, key, 2)
    await harness.broker.publish(crashed)
    await harness.writer.apply(await harness.take(1))
    assert (await db.get_form(key)) == crashed
    before = await index.read(key)
    assert before is not None and before.version < crashed.version

    report = await _reconciler(index, archive, rs).run(MODE_INCREMENTAL)
    assert report.outcome == OUTCOME_OK
    assert report.repaired_redis >= 1 and report.unrepaired == 0
    assert await index.read(key) == crashed
    # Versions keep increasing after the repair.
    assert await _save(harness, key, 3) > crashed.version


async def test_redis_ahead_of_mysql_is_repaired_only_after_the_grace_period(
    index: FormIndex, archive: FormArchive, db: MySQLDatabase, rs: Settings
) -> None:
    key = _key()
    # Committed in Redis, its message parked (dead-lettered) and never applied to MySQL.
    record = await _stage(index, key, 4)
    assert await index.commit(record, None, "")

    waiting = await _reconciler(index, archive, rs).run(MODE_INCREMENTAL)
    assert waiting.in_grace >= 1 and waiting.drifted == 0
    assert await db.get_form(key) is None

    report = await _reconciler(index, archive, rs, reconcile_grace_s=0.0).run(MODE_INCREMENTAL)
    assert report.repaired_mysql >= 1 and report.unrepaired == 0
    assert await db.get_form(key) == record


Race = Callable[[], Awaitable[object]]


class _RacingIndex(FormIndex):
    """Runs a concurrent save right before the reconciler's Redis repair reaches Redis."""

    race: Race | None = None

    async def fill_many(self, records: Sequence[FormRecord]) -> int:
        if self.race is not None and records:
            await self.race()
            self.race = None
        return await super().fill_many(records)


class _RacingArchive(FormArchive):
    """Runs a concurrent save right before the reconciler's MySQL repair reaches MySQL."""

    race: Race | None = None

    async def upsert_forms(self, records: Sequence[FormRecord]) -> None:
        if self.race is not None and records:
            await self.race()
            self.race = None
        await super().upsert_forms(records)


async def test_repairs_never_overwrite_a_concurrent_newer_save(
    harness: Harness, index: FormIndex, db: MySQLDatabase, rs: Settings
) -> None:
    racing_index = _RacingIndex(index.client, names_of(rs), rs)
    racing_archive = _RacingArchive(db, rs.shards)
    # Redis behind MySQL (crash window); a newer save commits in Redis just before the fill,
    # its message still on the way.
    behind = _key()
    await _save(harness, behind, 5)
    await harness.broker.publish(await _stage(index, behind, 6))
    await harness.writer.apply(await harness.take(1))
    newer_in_redis = await _stage(index, behind, 7)
    racing_index.race = lambda: index.commit(newer_in_redis, None, "")
    # MySQL behind Redis for longer than the grace period; a newer save commits and its
    # consumer writes MySQL just before the reconciler's upsert.
    ahead = _key()
    old = await _stage(index, ahead, 8)
    old = dataclasses.replace(old, updated_us=old.updated_us - int(2 * rs.reconcile_grace_s * 1e6))
    assert await index.commit(old, None, "")
    newer_in_mysql = await _stage(index, ahead, 9)

    async def save_and_consume() -> None:
        assert await index.commit(newer_in_mysql, None, "")
        await db.upsert_forms([newer_in_mysql])

    racing_archive.race = save_and_consume

    # Full: the change index scores by save time, and this Redis copy is made to look old.
    report = await Reconciler(racing_index, racing_archive, rs).run(MODE_FULL)
    assert racing_index.race is None and racing_archive.race is None, "no race happened"
    assert report.drifted >= 2 and report.unrepaired == 0
    assert await index.read(behind) == newer_in_redis
    assert await db.get_form(ahead) == newer_in_mysql
    assert await index.read(ahead) == newer_in_mysql


async def test_incremental_sees_only_changes_and_full_sweep_refills_a_redis_that_lost_its_data(
    harness: Harness, index: FormIndex, archive: FormArchive, db: MySQLDatabase, rs: Settings
) -> None:
    keys = [_key() for _ in range(12)]
    for i, key in enumerate(keys):
        await _save(harness, key, 20 + i)
    first = await _reconciler(index, archive, rs).run(MODE_INCREMENTAL)
    assert first.outcome == OUTCOME_OK and first.checked >= len(keys)

    await _flush(index, rs)
    quiet = await _reconciler(index, archive, rs).run(MODE_INCREMENTAL)
    assert quiet.checked == 0, "nothing changed since the last run"

    one = keys[0]
    shard = shard_of(one.candidate_id, rs.shards)
    single = await _reconciler(index, archive, rs).run(MODE_FULL, shard)
    in_shard = [k for k in keys if shard_of(k.candidate_id, rs.shards) == shard]
    assert single.repaired_redis >= len(in_shard) >= 1
    assert await index.read(one) == await db.get_form(one)

    full = await _reconciler(index, archive, rs).run(MODE_FULL)
    async with db._cursor() as cur:
        await cur.execute("SELECT COUNT(*) FROM forms")
        (total,) = await cur.fetchone()
    assert full.checked == total
    assert single.repaired_redis + full.repaired_redis == total
    assert full.unrepaired == 0 and full.outcome == OUTCOME_OK
    for key in keys:
        assert await index.read(key) == await db.get_form(key)


async def test_one_run_at_a_time_across_processes(
    index: FormIndex, archive: FormArchive, rs: Settings
) -> None:
    token = await index.acquire(30)
    assert token is not None
    try:
        with pytest.raises(LockBusy):
            await _reconciler(index, archive, rs).run(MODE_INCREMENTAL)
        assert await reconcile_once(rs, MODE_INCREMENTAL, None) == EXIT_BUSY
    finally:
        await index.release(token)
    assert (await _reconciler(index, archive, rs).run(MODE_INCREMENTAL)).outcome == OUTCOME_OK


async def test_unrepaired_drift_is_reported_everywhere_and_fails_the_once_run(
    index: FormIndex, archive: FormArchive, db: MySQLDatabase, rs: Settings
) -> None:
    # A Redis copy MySQL can never take (its batch code is longer than the column).
    key = FormKey(_key().candidate_id, "x" * 40)
    assert await index.commit(await _stage(index, key, 10), None, "")
    settings = dataclasses.replace(rs, reconcile_grace_s=0.0)
    metrics = ReconcileMetrics()
    try:
        report = await Reconciler(index, archive, settings, metrics).run(MODE_INCREMENTAL)
        assert report.outcome == OUTCOME_DRIFT and report.unrepaired == 1
        assert f"{key.candidate_id}:{key.batch}" in report.unrepaired_keys
        exposed = generate_latest(metrics.registry).decode()
        assert 'volreg_reconcile_runs_total{mode="incremental",outcome="drift"} 1.0' in exposed
        assert 'volreg_reconcile_last_run{field="unrepaired"} 1.0' in exposed
        assert await reconcile_once(settings, MODE_INCREMENTAL, None) == EXIT_DRIFT
        async with db._cursor() as cur:
            await cur.execute(
                "SELECT outcome, unrepaired FROM reconcile_runs ORDER BY id DESC LIMIT 2"
            )
            assert await cur.fetchall() == (("drift", 1), ("drift", 1))
    finally:
        names = names_of(rs)
        form_key = names.form_key(key)
        await index.client.delete(form_key)
        await index.client.zrem(names.changes_key(shard_of(key.candidate_id, rs.shards)), form_key)
    assert await reconcile_once(settings, MODE_INCREMENTAL, None) == 0


async def test_scheduled_reconciler_serves_status_and_metrics_and_stops_on_sigterm(
    rs: Settings, make_client: ClientFactory
) -> None:
    port = free_port()
    rs = dataclasses.replace(rs, metrics_token="5e7a9c1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c")
    env = settings_env(
        dataclasses.replace(
            rs, reconcile_http_port=port, reconcile_interval_s=1.0, token_generation_local_ttl_s=0.2
        )
    )
    proc = start_volreg("reconcile", env)
    admin = TokenSigner(rs.token_secret).issue(Claims("ops", ROLE_ADMIN, int(time.time()) + 600))
    timeout = aiohttp.ClientTimeout(total=5)
    try:
        async with aiohttp.ClientSession(
            timeout=timeout, headers={"Authorization": f"Bearer {admin}"}
        ) as http:
            deadline = time.monotonic() + 30
            runs = 0
            while runs < 2:
                assert time.monotonic() < deadline, "no scheduled runs"
                await asyncio.sleep(0.3)
                try:
                    async with http.get(f"http://127.0.0.1:{port}/status") as resp:
                        status = await resp.json()
                except aiohttp.ClientConnectionError:
                    continue
                runs = len(status["recent"])
            assert status["last"]["outcome"] == OUTCOME_OK
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                assert "volreg_reconcile_runs_total" in await resp.text()
            # Prometheus' scrape token opens /metrics, never /status (candidate IDs).
            scrape = {"Authorization": f"Bearer {rs.metrics_token}"}
            async with http.get(f"http://127.0.0.1:{port}/metrics", headers=scrape) as resp:
                assert resp.status == 200
            async with http.get(f"http://127.0.0.1:{port}/status", headers=scrape) as resp:
                assert resp.status == 401
        await _a_logged_out_admin_token_is_refused(rs, make_client, f"http://127.0.0.1:{port}")
        # Drift reports name candidates: nothing without an admin token.
        async with aiohttp.ClientSession(timeout=timeout) as anonymous:
            for path in ("/status", "/metrics"):
                async with anonymous.get(f"http://127.0.0.1:{port}{path}") as resp:
                    assert resp.status == 401
                    assert (await resp.json())["error"]["code"] == "unauthorized"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()[-2000:]


async def _a_logged_out_admin_token_is_refused(
    rs: Settings, make_client: ClientFactory, reconciler: str
) -> None:
    """An admin logs in at an API on the module's database and Redis and logs out there: the
    reconciler refuses the token from then on (the generation, as the API checks it)."""
    await create_staff_account(rs, "rc-admin", ROLE_ADMIN, "", STAFF_PASSWORD)
    api = await make_client(
        mysql_dsn=rs.mysql_dsn, key_prefix=rs.key_prefix, shards=rs.shards, wait_broker=False
    )
    resp = await api.post(urls.LOGIN, json={"username": "rc-admin", "password": STAFF_PASSWORD})
    assert resp.status == 200, await resp.text()
    token = {"Authorization": f"Bearer {(await resp.json())['token']}"}
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout, headers=token) as http:
        async with http.get(f"{reconciler}/status") as status:
            assert status.status == 200
        assert (await api.post(urls.LOGOUT, headers=token)).status == 200
        deadline = time.monotonic() + 10  # the reconciler's own copy lives 0.2 s
        while True:
            async with http.get(f"{reconciler}/status") as status:
                if status.status == 401:
                    assert "revoked" in (await status.json())["error"]["message"]
                    break
            assert time.monotonic() < deadline, "the logged-out token still opens /status"
            await asyncio.sleep(0.1)
        async with http.get(f"{reconciler}/metrics") as metrics:
            assert metrics.status == 401
