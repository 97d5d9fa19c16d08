"""Filing progress on the real servers: counters kept by the database as the consumer writes
forms and imports write candidates; admins see the province, teachers their school."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from schemas import urls
from schemas.records import STATUS_SAVED, STATUS_SUBMITTED, FormKey, FormRecord
from service.core import codec
from service.core.ids import make_id
from service.core.passwords import Passwords
from service.core.ports import Batch
from service.core.settings import Settings
from service.storage.mysql_db import MySQLDatabase
from tests.staff_support import ADMIN, OTHER_SCHOOL, SCHOOL, TEACHER, staff_login
from tests.support import PASSWORD, choices, login, wait_for_mysql

Client = TestClient[Any, Any]


@pytest.fixture
async def batch(db: MySQLDatabase) -> str:
    code = f"prog-{uuid.uuid4().hex[:6]}"
    now = datetime.now()
    await db.upsert_batch(Batch(code, "Progress", now - timedelta(days=1), now + timedelta(days=9)))
    return code


@pytest.fixture
async def school(db: MySQLDatabase, settings: Settings) -> tuple[str, list[str]]:
    """A school of its own with three candidates (password PASSWORD)."""
    code = f"99{random.randrange(10**9):09d}"
    hashed = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib).hash(PASSWORD)
    ids = [make_id(120101, "20070303", random.randrange(1000)) for _ in range(3)]
    while len(set(ids)) < 3:
        ids = [make_id(120101, "20070303", random.randrange(1000)) for _ in range(3)]
    await db.upsert_candidates([(cid, "P", code, hashed) for cid in ids])
    return code, ids


def _record(candidate_id: str, batch: str, version: int, status: str) -> FormRecord:
    payload = codec.compress(b'[{"institution":"10001","majors":["080901"]}]')
    return FormRecord(candidate_id, batch, version, version, status, payload)


async def _school_row(api: Client, batch: str, school: str) -> dict[str, Any]:
    admin = await staff_login(api, ADMIN)
    resp = await api.get(urls.ADMIN_PROGRESS, params={"batch": batch}, headers=admin)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["batch"] == batch
    province = body["province"]
    for status in ("candidates", "none", "saved", "submitted"):
        assert province[status] == sum(s[status] for s in body["schools"])
    row: dict[str, Any] = next(s for s in body["schools"] if s["school"] == school)
    return {k: v for k, v in row.items() if k != "school"}


async def test_counts_follow_saves_status_changes_and_moves(
    api: Client, db: MySQLDatabase, batch: str, school: tuple[str, list[str]]
) -> None:
    code, (first, second, third) = school
    assert await _school_row(api, batch, code) == {
        "candidates": 3,
        "none": 3,
        "saved": 0,
        "submitted": 0,
    }
    # Through the whole save path: API, broker, consumer, MySQL.
    headers = await login(api, first)
    resp = await api.put(
        urls.FORM.format(candidate_id=first, batch=batch),
        json={"choices": choices(2)},
        headers=headers,
    )
    assert resp.status == 200, await resp.text()
    await wait_for_mysql(db, FormKey(first, batch), (await resp.json())["version"])
    assert await _school_row(api, batch, code) == {
        "candidates": 3,
        "none": 2,
        "saved": 1,
        "submitted": 0,
    }
    # What the consumer writes: a new form, a redelivery (no change), a status change.
    await db.upsert_forms([_record(second, batch, 10, STATUS_SAVED)])
    await db.upsert_forms([_record(second, batch, 10, STATUS_SAVED)])
    await db.upsert_forms([_record(second, batch, 9, STATUS_SUBMITTED)])  # older: ignored
    assert await _school_row(api, batch, code) == {
        "candidates": 3,
        "none": 1,
        "saved": 2,
        "submitted": 0,
    }
    await db.upsert_forms([_record(second, batch, 11, STATUS_SUBMITTED)])
    assert await _school_row(api, batch, code) == {
        "candidates": 3,
        "none": 1,
        "saved": 1,
        "submitted": 1,
    }
    # A candidate moving school (a corrected import) takes their form's count along.
    await db.upsert_candidates([(second, "P", OTHER_SCHOOL, "x")])
    assert await _school_row(api, batch, code) == {
        "candidates": 2,
        "none": 1,
        "saved": 1,
        "submitted": 0,
    }
    other = await _school_row(api, batch, OTHER_SCHOOL)
    assert other["submitted"] >= 1
    await db.upsert_candidates([(third, "P", code, "x")])  # no move: nothing changes
    assert (await _school_row(api, batch, code))["candidates"] == 2


async def test_teachers_see_their_own_school_only(api: Client, batch: str) -> None:
    teacher = await staff_login(api, TEACHER)
    resp = await api.get(
        urls.SCHOOL_PROGRESS.format(school=SCHOOL), params={"batch": batch}, headers=teacher
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["school"] == SCHOOL and body["batch"] == batch
    assert body["candidates"] == body["none"] + body["saved"] + body["submitted"] >= 2


@pytest.mark.parametrize(
    ("who", "url", "params", "status"),
    [
        (None, urls.ADMIN_PROGRESS, {"batch": "undergrad-1"}, 401),
        (TEACHER, urls.ADMIN_PROGRESS, {"batch": "undergrad-1"}, 403),
        ("candidate", urls.SCHOOL_PROGRESS.format(school=SCHOOL), {"batch": "undergrad-1"}, 403),
        (TEACHER, urls.SCHOOL_PROGRESS.format(school=OTHER_SCHOOL), {"batch": "undergrad-1"}, 403),
        (TEACHER, urls.SCHOOL_PROGRESS.format(school=SCHOOL), {"batch": "nope-1"}, 404),
        (ADMIN, urls.ADMIN_PROGRESS, {"batch": "nope-1"}, 404),
        (ADMIN, urls.ADMIN_PROGRESS, {}, 422),
        (ADMIN, urls.SCHOOL_PROGRESS.format(school="x1"), {"batch": "undergrad-1"}, 422),
    ],
)
async def test_progress_refusals(
    api: Client, who: str | None, url: str, params: dict[str, str], status: int
) -> None:
    if who == "candidate":
        headers = await login(api)
    else:
        headers = await staff_login(api, who) if who else {}
    resp = await api.get(url, params=params, headers=headers)
    assert resp.status == status, await resp.text()
    assert "error" in await resp.json()
