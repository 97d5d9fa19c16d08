"""Bulk import: bad rows reported and never stopping good ones, streamed gzip uploads, job
status, teachers, and a killed import resumed with no row written or counted twice."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncmy
import pytest
from aiohttp.test_utils import TestClient

from schemas import urls
from service.core.ids import make_id
from service.core.settings import Settings
from service.imports.gendata import DEMO_CANDIDATE, write_candidates
from service.imports.mysql import ImportJobs
from service.storage.mysql_db import MySQLDatabase, pool_kwargs
from service.storage.redis_cache import RedisCache
from tests.staff_support import ADMIN, candidates_csv, gz, staff_login, teachers_csv
from tests.support import login, settings_env

Client = TestClient[Any, Any]
HASH = "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$0aXk3+z0p4R5ZJZ4sT9G4j1p3y2C4X5e1n8FmN6s7hU"


def _row(cid: str, **over: Any) -> list[Any]:
    row = {
        "candidate_id": cid,
        "name": "张三",
        "school_code": "320102007",
        "password_hash": HASH,
        "total_score": 600,
        "rank": 10,
        "chinese": 120,
        "math": 130,
        "english": 110,
        "elective": 240,
    }
    row.update(over)
    return list(row.values())


def _ids(region: int, count: int) -> list[str]:
    return [make_id(region, "20070102", i) for i in range(count)]


async def _upload(
    client: Client, body: bytes, headers: dict[str, str], chunk: int = 0, **params: str
) -> Any:
    """POST the body, streamed in ``chunk``-byte pieces when ``chunk`` is set."""

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(body), chunk):
            yield body[i : i + chunk]
            await asyncio.sleep(0)

    data: Any = pieces() if chunk else body
    return await client.post(urls.ADMIN_IMPORTS, data=data, headers=headers, params=params)


async def test_bad_rows_are_reported_and_good_rows_imported(
    api: Client, db: MySQLDatabase, cache: RedisCache
) -> None:
    good = _ids(330106, 6)
    wrong_check = good[0][:17] + ("0" if good[0][17] != "0" else "1")
    rows = [
        _row(good[0]),
        _row(wrong_check),  # line 3
        _row(good[1], name=""),  # 4
        _row(good[2], total_score="six hundred"),  # 5
        _row(good[0], rank=5),  # 6: duplicate of line 2
        _row(good[3], math="nan"),  # 7
        _row(good[4], password_hash="plain-text"),  # 8
        _row(good[5])[:5],  # 9: too few fields
        _row(good[1], rank=1.5),  # 10: line 4 was rejected, so this one is the first
        _row(good[2], elective=301),  # 11
    ]
    admin = await staff_login(api, ADMIN)
    resp = await _upload(api, candidates_csv(rows), admin, name="bad-rows.csv")
    assert resp.status == 200, await resp.text()
    job = await resp.json()
    assert job["state"] == "done" and job["kind"] == "candidates"
    assert (job["rows_read"], job["imported"], job["rejected"]) == (10, 1, 9)
    reasons = {r["line"]: r["reason"] for r in job["rejections"]}
    assert set(reasons) == {3, 4, 5, 6, 7, 8, 9, 10, 11}
    assert "check digit" in reasons[3]
    assert reasons[4].startswith("name")
    assert reasons[5].startswith("total_score")
    assert "duplicate" in reasons[6]
    assert reasons[7].startswith("math")
    assert reasons[8].startswith("password_hash")
    assert "fields" in reasons[9]
    assert reasons[10].startswith("rank")
    assert reasons[11].startswith("elective")
    assert (await db.get_candidate(good[0])) is not None
    exam = await cache.get_exam(good[0])
    assert exam is not None and exam["total_score"] == 600
    for cid in good[1:]:
        assert await db.get_candidate(cid) is None
        assert await cache.get_exam(cid) is None


async def test_streamed_gzip_upload_and_job_status(
    api: Client, db: MySQLDatabase, cache: RedisCache
) -> None:
    ids = _ids(370102, 300)
    body = gz(candidates_csv([_row(cid, rank=i + 1) for i, cid in enumerate(ids)]))
    admin = await staff_login(api, ADMIN)
    resp = await _upload(api, body, admin, chunk=997, job="gz-job-1")
    assert resp.status == 200, await resp.text()
    status = await (await api.get(urls.ADMIN_IMPORT.format(job="gz-job-1"), headers=admin)).json()
    assert status["state"] == "done" and status["imported"] == 300 and status["rejected"] == 0
    assert status["load_rate_rows_per_s"] > 0 and status["eta_s"] is None
    assert status["phase"] == "done"
    assert status["byte_offset"] == len(gzip.decompress(body))
    for cid in (ids[0], ids[-1]):
        assert (await db.get_exam(cid)) is not None and (await cache.get_exam(cid)) is not None
    # The same job again: it is done, so nothing is imported twice.
    again = await _upload(api, body, admin, job="gz-job-1")
    assert again.status == 409
    # The same content without a job id is a new job (the first one finished).
    fresh = await _upload(api, body, admin)
    assert fresh.status == 200 and (await fresh.json())["job"] != "gz-job-1"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"", 422, "import_refused"),
        (b"who,what\n1,2\n", 422, "import_refused"),
        (b"\x1f\x8b\x08\x00garbage", 422, "import_refused"),
        (b"\xff\xfe\x00", 422, "import_refused"),
    ],
)
async def test_unimportable_uploads(api: Client, body: bytes, status: int, code: str) -> None:
    admin = await staff_login(api, ADMIN)
    resp = await _upload(api, body, admin)
    assert resp.status == status, await resp.text()
    assert (await resp.json())["error"]["code"] == code


async def test_import_status_refusals(api: Client) -> None:
    admin = await staff_login(api, ADMIN)
    assert (await api.get(urls.ADMIN_IMPORT.format(job="nope"), headers=admin)).status == 404
    assert (await api.get(urls.ADMIN_IMPORT.format(job="a b"), headers=admin)).status == 422
    bad = await api.post(urls.ADMIN_IMPORTS, data=b"x", headers=admin, params={"job": "a/b"})
    assert bad.status == 422
    assert (await api.get(urls.ADMIN_IMPORT.format(job="nope"))).status == 401


async def test_teachers_import_then_log_in(api: Client) -> None:
    from service.core.passwords import Passwords

    hashed = Passwords(1, 1024).hash("teacher-password")
    rows = [
        ["t-imported-1", "李老师", "320102007", hashed],
        ["bad name", "王老师", "320102007", hashed],
        ["t-imported-2", "王老师", "32010200X", hashed],
    ]
    admin = await staff_login(api, ADMIN)
    resp = await _upload(api, teachers_csv(rows), admin)
    assert resp.status == 200, await resp.text()
    job = await resp.json()
    assert (job["kind"], job["imported"], job["rejected"]) == ("teachers", 1, 2)
    resp = await api.post(
        urls.LOGIN, json={"username": "t-imported-1", "password": "teacher-password"}
    )
    assert resp.status == 200 and (await resp.json())["role"] == "teacher"
    candidate = await login(api)
    assert (await _upload(api, teachers_csv(rows), candidate)).status == 403


def _file_without_demo(path: Path, rows: int) -> tuple[int, int]:
    """A generated file (the demo candidate left out: the shared tests own it) with every
    97th row spoiled. Returns (good rows, bad rows)."""
    raw = path.with_suffix(".raw.csv")
    write_candidates(raw, rows, 40, seed=11)
    lines = raw.read_text(encoding="utf-8").splitlines(keepends=True)
    out = [lines[0]]
    bad = 0
    for i, line in enumerate(lines[1:]):
        if line.startswith(DEMO_CANDIDATE):
            continue
        if i % 97 == 0:
            line = line.replace(",", ",,", 1)  # shifts every field: a bad ID check/number
            bad += 1
        out.append(line)
    with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
        fh.writelines(out)
    return len(out) - 1 - bad, bad


async def _count_candidates(settings: Settings, ids: list[str]) -> int:
    conn = await asyncmy.connect(**pool_kwargs(settings))
    try:
        async with conn.cursor() as cur:
            marks = ", ".join(["%s"] * len(ids))
            await cur.execute(
                f"SELECT COUNT(*) FROM candidates WHERE candidate_id IN ({marks})", ids
            )
            (count,) = await cur.fetchone()
            return int(count)
    finally:
        conn.close()


def _import_process(settings: Settings, path: Path, job: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "service.main.cli", "import", str(path), "--job", job],
        env=settings_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_killed_import_resumes_without_duplicates(
    settings: Settings, db: MySQLDatabase, cache: RedisCache, tmp_path: Path
) -> None:
    path = tmp_path / "kill.csv.gz"
    good, bad = _file_without_demo(path, 20_000)
    small = dataclasses.replace(
        settings, import_batch_rows=100, import_writers=2, import_run_rows=3_000
    )
    jobs = ImportJobs(db)
    job_id = f"kill-{time.time_ns()}"
    proc = _import_process(small, path, job_id)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job = await jobs.get(job_id)
            if job is not None and job.imported >= 2_000:
                break
            await asyncio.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    killed = await jobs.get(job_id)
    assert killed is not None and killed.state == "running"
    assert 2_000 <= killed.imported < good, "killed too late to test a resume"

    rerun = _import_process(small, path, job_id)
    assert await asyncio.to_thread(rerun.wait, 120) == 1  # 1: done, with rejected rows
    done = await jobs.get(job_id)
    assert done is not None and done.state == "done" and done.runs == 2
    assert done.resumed_from == killed.imported
    assert (done.rows_done, done.imported, done.rejected) == (good + bad, good, bad)
    rejections = await jobs.rejections(job_id, 0, 10 * bad)
    assert len(rejections) == bad  # no rejection recorded twice
    # Every good row is in MySQL and Redis.
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        ids = [line.split(",", 1)[0] for line in fh.read().splitlines()[1:] if ",," not in line]
    assert len(ids) == good
    assert await _count_candidates(settings, ids) == good
    for cid in ids[:: max(1, good // 50)]:
        assert await cache.get_exam(cid) is not None
