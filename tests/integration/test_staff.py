"""Teachers and admins: login, roles, a teacher's read-only view of their school."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from schemas import urls
from schemas.records import FormKey
from service.core.ids import make_id
from service.core.settings import Settings
from service.storage.mysql_db import MySQLDatabase
from tests.staff_support import (
    ADMIN,
    OTHER_SCHOOL,
    OTHER_TEACHER,
    SCHOOL,
    STAFF_PASSWORD,
    TEACHER,
    staff_login,
)
from tests.support import DEMO_ID, OTHER_ID, choices, form_url, login, settings_env, wait_for_mysql

Client = TestClient[Any, Any]


async def test_staff_log_in_with_username(api: Client) -> None:
    for username, role in ((ADMIN, "admin"), (TEACHER, "teacher")):
        resp = await api.post(urls.LOGIN, json={"username": username, "password": STAFF_PASSWORD})
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["role"] == role


@pytest.mark.parametrize(
    ("body", "status", "path"),
    [
        ({"username": ADMIN, "password": "wrong-password"}, 401, None),
        ({"username": "nobody", "password": STAFF_PASSWORD}, 401, None),
        ({"username": ADMIN, "password": STAFF_PASSWORD, "role": "admin"}, 422, "role"),
        ({"username": ADMIN, "password": STAFF_PASSWORD, "candidate_id": DEMO_ID}, 422, None),
        ({"username": "bad name", "password": STAFF_PASSWORD}, 422, "username"),
        ({"username": ADMIN}, 422, "password"),
        ({"username": 7, "password": STAFF_PASSWORD}, 422, "username"),
    ],
)
async def test_bad_staff_logins(
    api: Client, body: dict[str, Any], status: int, path: str | None
) -> None:
    resp = await api.post(urls.LOGIN, json=body)
    assert resp.status == status, await resp.text()
    error = (await resp.json())["error"]
    if path:
        assert path in {d["path"] for d in error["details"]}


async def test_teacher_reads_own_school_only_and_never_writes(
    api: Client, db: MySQLDatabase
) -> None:
    headers = await login(api)
    body = {"choices": choices(2, 5)}
    saved = await api.put(form_url(), json=body, headers=headers)
    assert saved.status == 200
    teacher = await staff_login(api, TEACHER)
    resp = await api.get(form_url(), headers=teacher)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["choices"] == body["choices"]
    exam = await api.get(urls.EXAM.format(candidate_id=DEMO_ID), headers=teacher)
    assert exam.status == 200
    before = await api.get(form_url(), headers=headers)
    resp = await api.put(form_url(), json={"choices": choices(1)}, headers=teacher)
    assert resp.status == 403
    assert await (await api.get(form_url(), headers=headers)).json() == await before.json()
    other = await staff_login(api, OTHER_TEACHER)
    assert (await api.get(form_url(), headers=other)).status == 403
    assert (await api.get(urls.EXAM.format(candidate_id=DEMO_ID), headers=other)).status == 403
    # An unknown ID answers exactly like another school's candidate: no existence oracle.
    unknown = make_id(110105, "20000101", 998)
    answers = [
        await api.get(form_url(unknown), headers=teacher),
        await api.get(form_url(), headers=other),
        await api.get(urls.EXAM.format(candidate_id=unknown), headers=teacher),
        await api.get(urls.EXAM.format(candidate_id=DEMO_ID), headers=other),
    ]
    assert {(r.status, (await r.json())["error"]["message"]) for r in answers} == {
        (403, "no candidate of your school has this ID")
    }
    admin = await staff_login(api, ADMIN)
    assert (await api.get(form_url(), headers=admin)).status == 403


async def test_school_candidates_paged_with_filing_status(api: Client, db: MySQLDatabase) -> None:
    headers = await login(api, OTHER_ID)
    saved = await api.put(form_url(OTHER_ID), json={"choices": choices(1, 2)}, headers=headers)
    assert saved.status == 200
    version = (await saved.json())["version"]
    await wait_for_mysql(db, FormKey(OTHER_ID, "undergrad-1"), version)
    # A third candidate of the school, so paging by one really takes three pages.
    third = make_id(110105, "20070202", 3)
    await db.upsert_candidates([(third, "Third", SCHOOL, "not-a-hash")])
    teacher = await staff_login(api, TEACHER)
    url = urls.SCHOOL_CANDIDATES.format(school=SCHOOL)

    async def collect(limit: int, pages: int = 1000, **params: str) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(pages):
            query = {**params, "limit": str(limit), "cursor": cursor}
            resp = await api.get(url, params=query, headers=teacher)
            assert resp.status == 200, await resp.text()
            page = await resp.json()
            assert len(page["candidates"]) <= limit
            seen += page["candidates"]
            cursor = page["next_cursor"]
            if not cursor:
                break
        return seen

    first = [c["candidate_id"] for c in await collect(1, pages=3)]
    assert len(first) == 3 and first == sorted(set(first))
    everyone = await collect(200)
    ids = [c["candidate_id"] for c in everyone]
    assert ids == sorted(set(ids)) and first == ids[:3]
    assert {DEMO_ID, OTHER_ID} <= set(ids)
    other = next(c for c in everyone if c["candidate_id"] == OTHER_ID)
    assert other["forms"]["undergrad-1"]["status"] == "saved"
    assert other["forms"]["undergrad-1"]["version"] >= version
    filed = await collect(200, status="filed", batch="undergrad-1")
    assert OTHER_ID in {c["candidate_id"] for c in filed}
    assert all("undergrad-1" in c["forms"] for c in filed)
    unfiled = await collect(200, status="unfiled", batch="undergrad-1")
    assert OTHER_ID not in {c["candidate_id"] for c in unfiled}
    assert len(filed) + len(unfiled) == len(everyone)
    admin = await staff_login(api, ADMIN)
    assert (await api.get(url, headers=admin)).status == 200


@pytest.mark.parametrize(
    ("who", "school", "params", "status"),
    [
        (None, SCHOOL, {}, 401),
        ("candidate", SCHOOL, {}, 403),
        (TEACHER, OTHER_SCHOOL, {}, 403),
        (TEACHER, SCHOOL, {"status": "maybe"}, 422),
        (TEACHER, SCHOOL, {"limit": "0"}, 422),
        (TEACHER, SCHOOL, {"limit": "1000"}, 422),
        (TEACHER, SCHOOL, {"cursor": "!!"}, 422),
        (TEACHER, "12a", {}, 422),
    ],
)
async def test_school_listing_refusals(
    api: Client, who: str | None, school: str, params: dict[str, str], status: int
) -> None:
    if who == "candidate":
        headers = await login(api)
    else:
        headers = await staff_login(api, who) if who else {}
    url = urls.SCHOOL_CANDIDATES.format(school=school)
    resp = await api.get(url, params=params, headers=headers)
    assert resp.status == status, await resp.text()


async def test_teacher_and_candidate_reach_no_admin_endpoint(api: Client) -> None:
    for headers in (await staff_login(api, TEACHER), await login(api)):
        resp = await api.get(urls.ADMIN_IMPORT.format(job="x"), headers=headers)
        assert resp.status == 403
        resp = await api.post(urls.ADMIN_IMPORTS, data=b"a,b\n", headers=headers)
        assert resp.status == 403


def _volreg(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "service.main.cli", *args], env=env, capture_output=True, timeout=60
    )


async def test_admin_account_from_the_command_line(api: Client, settings: Settings) -> None:
    env = {**settings_env(settings), "VOLREG_NEW_PASSWORD": "cli-admin-pw"}
    run = await asyncio.to_thread(_volreg, env, "admin", "cli-admin")
    assert run.returncode == 0, run.stderr.decode()
    resp = await api.post(urls.LOGIN, json={"username": "cli-admin", "password": "cli-admin-pw"})
    assert resp.status == 200 and (await resp.json())["role"] == "admin"
    bad = await asyncio.to_thread(_volreg, env, "admin", "t1", "--role", "teacher")
    assert bad.returncode == 2 and b"school" in bad.stderr
