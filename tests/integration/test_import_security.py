"""Imports read as an attacker would, against the real MariaDB and Redis: a resume only over
the very same stream, one run per job at a time, bounded argon2 parameters, and a teachers
file that cannot touch an admin account."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from schemas import urls
from service.accounts.mysql import StaffTables
from service.core.ids import make_id
from service.core.passwords import Passwords
from service.core.settings import Settings
from service.imports.mysql import ImportJobs
from service.imports.pipeline import ImportConflict, Importer, ImportFailed, Options, Sinks
from service.storage.mysql_db import MySQLDatabase
from service.storage.redis_cache import RedisCache
from tests.conftest import ClientFactory
from tests.staff_support import ADMIN, STAFF_PASSWORD, candidates_csv, staff_login, teachers_csv

Client = TestClient[Any, Any]
HASH = "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$0aXk3+z0p4R5ZJZ4sT9G4j1p3y2C4X5e1n8FmN6s7hU"
HUGE = "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$0aXk3+z0p4R5ZJZ4sT9G4j1p3y2C4X5e1n8FmN6s7hU"


def _row(cid: str, name: str = "张三", password_hash: str = HASH) -> list[Any]:
    return [cid, name, "320102007", password_hash, 600, 10, 120, 130, 110, 240]


class _Bytes:
    """An upload held in memory."""

    def __init__(self, data: bytes) -> None:
        self._data, self._at = data, 0

    async def read(self, size: int) -> bytes:
        chunk = self._data[self._at : self._at + size]
        self._at += len(chunk)
        return chunk


class _FailingAfter:
    """MySQL, but the candidates upsert fails for good after ``calls`` batches (a crash)."""

    def __init__(self, inner: MySQLDatabase, calls: int) -> None:
        self._inner, self._calls = inner, calls

    async def upsert_candidates(self, rows: Sequence[tuple[str, str, str, str]]) -> None:
        if self._calls <= 0:
            raise RuntimeError("the disk is full")
        self._calls -= 1
        await self._inner.upsert_candidates(rows)

    async def upsert_exams(self, exams: dict[str, dict[str, Any]]) -> None:
        await self._inner.upsert_exams(exams)


async def test_resume_needs_the_whole_stream_to_match(
    settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    small = dataclasses.replace(settings, import_batch_rows=100, import_writers=1)
    ids = [make_id(510102, "20070606", i) for i in range(1000)]
    original = candidates_csv([_row(cid) for cid in ids])
    assert len(original) > 2 * 64 * 1024
    # Same length, same first 64 KiB, one row different at the end.
    tampered = candidates_csv([_row(cid) for cid in ids[:-1]] + [_row(ids[-1], "李四")])
    assert len(tampered) == len(original) and tampered[:65536] == original[:65536]
    jobs = ImportJobs(db)
    staff = StaffTables(db)
    crashing = Importer(Sinks(_FailingAfter(db, 2), cache, staff, jobs), small)
    options = Options("candidates.csv", total_bytes=len(original))
    with pytest.raises(ImportFailed) as failed:
        await crashing.run(_Bytes(original), options)
    job_id = failed.value.details["job"]
    stopped = await jobs.get(job_id)
    assert stopped is not None and stopped.imported == 200 and stopped.digest

    importer = Importer(Sinks(db, cache, staff, jobs), small)
    # The other file finds the unfinished job by its first 64 KiB, but is refused before it
    # loads anything (it would have skipped 200 rows it never had loaded).
    with pytest.raises(ImportConflict, match="differs"):
        await importer.run(_Bytes(tampered), options)
    after = await jobs.get(job_id)
    assert after is not None and after.imported == 200 and after.state != "done"
    assert (await db.get_candidate(ids[-1])) is None
    # The right file resumes and finishes the job.
    done = await importer.run(_Bytes(original), options)
    assert done.job_id == job_id and done.state == "done" and done.imported == 1000
    assert done.resumed_from == 200
    last = await db.get_candidate(ids[-1])
    assert last is not None and last.name == "张三"


async def test_one_run_per_job_at_a_time(make_client: ClientFactory) -> None:
    client = await make_client(import_lease_s=1.0)
    admin = await staff_login(client, ADMIN)
    ids = [make_id(510103, "20070707", i) for i in range(900)]
    body = candidates_csv([_row(cid) for cid in ids])
    job = f"lease-{time.time_ns()}"

    async def slowly() -> AsyncIterator[bytes]:
        yield body[:70_000]  # the head: the job exists from here on
        for i in range(70_000, len(body), 4096):
            await asyncio.sleep(0.1)
            yield body[i : i + 4096]

    first = asyncio.create_task(
        client.post(urls.ADMIN_IMPORTS, data=slowly(), headers=admin, params={"job": job})
    )
    status_url = urls.ADMIN_IMPORT.format(job=job)
    for _ in range(100):
        if (await client.get(status_url, headers=admin)).status == 200:
            break
        await asyncio.sleep(0.05)
    second = await client.post(urls.ADMIN_IMPORTS, data=body, headers=admin, params={"job": job})
    assert not first.done(), "the first upload ended before the second one was refused"
    assert second.status == 409, await second.text()
    error = (await second.json())["error"]
    assert error["code"] == "import_conflict" and "is running" in error["message"]
    resp = await first
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["imported"] == 900


async def test_argon2_parameters_of_imported_hashes_are_bounded(
    api: Client, db: MySQLDatabase, settings: Settings
) -> None:
    admin = await staff_login(api, ADMIN)
    ok, huge = make_id(510104, "20070808", 1), make_id(510104, "20070808", 2)
    resp = await api.post(
        urls.ADMIN_IMPORTS,
        data=candidates_csv([_row(ok), _row(huge, password_hash=HUGE)]),
        headers=admin,
    )
    assert resp.status == 200, await resp.text()
    job = await resp.json()
    assert (job["imported"], job["rejected"]) == (1, 1)
    status = await api.get(urls.ADMIN_IMPORT.format(job=job["job"]), headers=admin)
    reasons = [r["reason"] for r in (await status.json())["rejections"]]
    assert any("memory cost 4194304" in r for r in reasons), reasons
    assert await db.get_candidate(huge) is None

    # Such a hash written by other means is never verified: 4 GiB would be allocated per try.
    planted = make_id(510104, "20070808", 3)
    await db.upsert_candidates([(planted, "Planted", "510104001", HUGE)])
    body = {"candidate_id": planted, "password": "anything"}
    assert (await api.post(urls.LOGIN, json=body)).status == 401


async def test_a_teachers_file_cannot_change_an_admin(api: Client, settings: Settings) -> None:
    admin = await staff_login(api, ADMIN)
    takeover = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib).hash("mine-now")
    resp = await api.post(
        urls.ADMIN_IMPORTS,
        data=teachers_csv([[ADMIN, "Mallory", "320102007", takeover]]),
        headers=admin,
    )
    assert resp.status == 200, await resp.text()
    hijack = await api.post(urls.LOGIN, json={"username": ADMIN, "password": "mine-now"})
    assert hijack.status == 401
    still = await api.post(urls.LOGIN, json={"username": ADMIN, "password": STAFF_PASSWORD})
    assert still.status == 200 and (await still.json())["role"] == "admin"
