"""Submission on the real servers: the reviewed version becomes submitted through the save
protocol; stale versions, closed windows and final batches are refused with nothing changed."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from schemas import urls
from schemas.records import FormKey
from service.core.ports import Batch
from service.storage.mysql_db import MySQLDatabase
from tests.staff_support import ADMIN, SCHOOL, TEACHER, staff_login
from tests.support import CLOSED_BATCH, DEMO_ID, OTHER_ID, choices, login, wait_for_mysql

Client = TestClient[Any, Any]


async def _batch(db: MySQLDatabase, final: bool) -> str:
    code = f"sub-{uuid.uuid4().hex[:6]}"
    now = datetime.now()
    window = (now - timedelta(days=1), now + timedelta(days=9))
    await db.upsert_batch(Batch(code, "Submit", *window, changes_after_submit=not final))
    return code


@pytest.fixture
async def batch(db: MySQLDatabase) -> str:
    return await _batch(db, final=False)


@pytest.fixture
async def final_batch(db: MySQLDatabase) -> str:
    return await _batch(db, final=True)


def _form(batch: str, candidate_id: str = DEMO_ID) -> str:
    return urls.FORM.format(candidate_id=candidate_id, batch=batch)


def _submit(batch: str, candidate_id: str = DEMO_ID) -> str:
    return urls.FORM_SUBMIT.format(candidate_id=candidate_id, batch=batch)


async def _save(api: Client, headers: dict[str, str], batch: str, salt: int) -> int:
    resp = await api.put(_form(batch), json={"choices": choices(2, salt)}, headers=headers)
    assert resp.status == 200, await resp.text()
    version: int = (await resp.json())["version"]
    return version


async def test_submit_the_reviewed_version(api: Client, db: MySQLDatabase, batch: str) -> None:
    headers = await login(api)
    reviewed = await _save(api, headers, batch, 1)
    resp = await api.post(_submit(batch), json={"version": reviewed}, headers=headers)
    assert resp.status == 200, await resp.text()
    submitted = await resp.json()
    assert submitted["status"] == "submitted" and submitted["version"] > reviewed
    form = await (await api.get(_form(batch), headers=headers)).json()
    assert form["status"] == "submitted" and form["version"] == submitted["version"]
    assert form["choices"] == choices(2, 1)
    stored = await wait_for_mysql(db, FormKey(DEMO_ID, batch), submitted["version"])
    assert stored.status == "submitted"
    # Submitting it again changes nothing.
    again = await api.post(_submit(batch), json={"version": submitted["version"]}, headers=headers)
    assert again.status == 200 and (await again.json())["version"] == submitted["version"]
    # The history has both; the school's progress counts a submitted form.
    history = await (
        await api.get(urls.FORM_HISTORY.format(candidate_id=DEMO_ID, batch=batch), headers=headers)
    ).json()
    assert [e["status"] for e in history["entries"]] == ["submitted", "saved"]
    teacher = await staff_login(api, TEACHER)
    progress = await (
        await api.get(
            urls.SCHOOL_PROGRESS.format(school=SCHOOL), params={"batch": batch}, headers=teacher
        )
    ).json()
    assert progress["submitted"] == 1 and progress["saved"] == 0
    # This batch lets a submitted form change: it is saved (not submitted) again.
    await _save(api, headers, batch, 2)
    form = await (await api.get(_form(batch), headers=headers)).json()
    assert form["status"] == "saved" and form["choices"] == choices(2, 2)


async def test_a_stale_version_is_refused_and_changes_nothing(api: Client, batch: str) -> None:
    headers = await login(api)
    first = await _save(api, headers, batch, 3)
    second = await _save(api, headers, batch, 4)
    for version in (first, second + 1):
        resp = await api.post(_submit(batch), json={"version": version}, headers=headers)
        assert resp.status == 409, await resp.text()
        assert (await resp.json())["error"]["code"] == "stale_version"
    form = await (await api.get(_form(batch), headers=headers)).json()
    assert form["version"] == second and form["status"] == "saved"
    nothing = await api.post(
        _submit(batch, OTHER_ID), json={"version": 1}, headers=await login(api, OTHER_ID)
    )
    assert nothing.status == 409  # nothing saved yet


async def test_a_final_batch_refuses_changes_after_submission(
    api: Client, final_batch: str
) -> None:
    headers = await login(api)
    reviewed = await _save(api, headers, final_batch, 5)
    resp = await api.post(_submit(final_batch), json={"version": reviewed}, headers=headers)
    assert resp.status == 200, await resp.text()
    submitted = (await resp.json())["version"]
    refused = await api.put(_form(final_batch), json={"choices": choices(1, 6)}, headers=headers)
    assert refused.status == 409, await refused.text()
    assert (await refused.json())["error"]["code"] == "form_submitted"
    form = await (await api.get(_form(final_batch), headers=headers)).json()
    assert form["version"] == submitted and form["choices"] == choices(2, 5)
    batches = await (await api.get(urls.CATALOGUE_BATCHES)).json()
    listed = next(b for b in batches["batches"] if b["code"] == final_batch)
    assert listed["changes_after_submit"] is False


async def test_submit_refusals(api: Client, batch: str) -> None:
    headers = await login(api)
    version = await _save(api, headers, batch, 7)
    closed = await api.post(_submit(CLOSED_BATCH), json={"version": version}, headers=headers)
    assert closed.status == 409
    assert (await closed.json())["error"]["code"] == "window_closed"
    for body in ({"version": 0}, {"version": "1"}, {"version": version, "x": 1}, {}):
        resp = await api.post(_submit(batch), json=body, headers=headers)
        assert resp.status == 422, (body, await resp.text())
    bad_json = await api.post(_submit(batch), data=b"{", headers=headers)
    assert bad_json.status == 400
    for who in (TEACHER, ADMIN):
        resp = await api.post(
            _submit(batch), json={"version": version}, headers=await staff_login(api, who)
        )
        assert resp.status == 403
    other = await api.post(
        _submit(batch), json={"version": version}, headers=await login(api, OTHER_ID)
    )
    assert other.status == 403
    unknown = await api.post(_submit("no-such-batch"), json={"version": 1}, headers=headers)
    assert unknown.status == 404
    form = await (await api.get(_form(batch), headers=headers)).json()
    assert form["version"] == version and form["status"] == "saved"
