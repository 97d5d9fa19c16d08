"""What each handler answers is what its response model (schemas.responses, which the OpenAPI
document is generated from) says: every route called with real data behind it, every body
validated by its model, which forbids fields it does not name."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from pydantic import BaseModel

from schemas import responses, urls
from tests.staff_support import ADMIN, SCHOOL, TEACHER, candidates_csv, staff_login
from tests.support import DEMO_ID, OPEN_BATCH, PASSWORD, choices, form_url, login

Client = TestClient[Any, Any]


async def _check(
    client: Client,
    model: type[BaseModel],
    method: str,
    url: str,
    status: int = 200,
    **kwargs: Any,
) -> dict[str, Any]:
    resp = await client.request(method, url, **kwargs)
    text = await resp.text()
    assert resp.status == status, f"{method} {url}: {resp.status} {text}"
    body: dict[str, Any] = await resp.json()
    model.model_validate(body)
    return body


async def test_every_body_matches_its_model(api: Client) -> None:
    candidate = await login(api)
    admin = await staff_login(api, ADMIN)
    teacher = await staff_login(api, TEACHER)

    # Errors, with and without details.
    await _check(api, responses.Error, "GET", form_url(), 401)
    bad = {"choices": [{"institution": "1", "majors": []}]}
    await _check(api, responses.Error, "PUT", form_url(), 422, json=bad, headers=candidate)

    credentials = {"candidate_id": DEMO_ID, "password": PASSWORD}
    await _check(api, responses.LoginResult, "POST", urls.LOGIN, json=credentials)
    await _check(
        api, responses.Exam, "GET", urls.EXAM.format(candidate_id=DEMO_ID), headers=candidate
    )
    saved = await _check(
        api, responses.Saved, "PUT", form_url(), json={"choices": choices(2, 3)}, headers=candidate
    )
    await _check(api, responses.Form, "GET", form_url(), headers=candidate)
    submit = urls.FORM_SUBMIT.format(candidate_id=DEMO_ID, batch=OPEN_BATCH)
    await _check(
        api,
        responses.Submitted,
        "POST",
        submit,
        json={"version": saved["version"]},
        headers=candidate,
    )
    history = urls.FORM_HISTORY.format(candidate_id=DEMO_ID, batch=OPEN_BATCH)
    for _ in range(100):  # the consumer writes the history
        body = await _check(api, responses.History, "GET", history, headers=candidate)
        if len(body["entries"]) >= 2:
            break
        await asyncio.sleep(0.1)
    assert body["entries"], body

    await _check(api, responses.Health, "GET", urls.LIVE)
    await _check(api, responses.Readiness, "GET", urls.READY)
    await _check(api, responses.Readiness, "GET", urls.DEPS)

    await _check(api, responses.Institutions, "GET", urls.CATALOGUE_INSTITUTIONS)
    code = "10001"
    await _check(api, responses.Institution, "GET", urls.CATALOGUE_INSTITUTION.format(code=code))
    await _check(api, responses.Batches, "GET", urls.CATALOGUE_BATCHES)
    institution = {"name": "Checked", "majors": [{"code": "990101", "name": "One"}]}
    await _check(
        api,
        responses.InstitutionPublished,
        "PUT",
        urls.ADMIN_INSTITUTION.format(code="99901"),
        json=institution,
        headers=admin,
    )
    now = datetime.now().replace(microsecond=0)
    batch = {
        "name": "Checked",
        "opens_at": (now - timedelta(days=1)).isoformat(),
        "closes_at": (now + timedelta(days=1)).isoformat(),
        "control_lines": [{"category": "physics", "min_score": 480.5}],
    }
    await _check(
        api,
        responses.BatchPublished,
        "PUT",
        urls.ADMIN_BATCH.format(batch="checked-1"),
        json=batch,
        headers=admin,
    )

    csv = candidates_csv([["110105200001010011", "Imported", SCHOOL, "x" * 20, "600", "1"]])
    job = await _check(
        api,
        responses.ImportJob,
        "POST",
        urls.ADMIN_IMPORTS + "?name=checked.csv&fresh=1",
        data=csv,
        headers={**admin, "Content-Type": "text/csv"},
    )
    await _check(
        api, responses.ImportJob, "GET", urls.ADMIN_IMPORT.format(job=job["job"]), headers=admin
    )

    school = urls.SCHOOL_CANDIDATES.format(school=SCHOOL)
    await _check(api, responses.SchoolCandidates, "GET", school + "?limit=1", headers=teacher)
    progress = urls.SCHOOL_PROGRESS.format(school=SCHOOL) + f"?batch={OPEN_BATCH}"
    await _check(api, responses.SchoolProgress, "GET", progress, headers=teacher)
    province = urls.ADMIN_PROGRESS + f"?batch={OPEN_BATCH}"
    await _check(api, responses.ProvinceProgress, "GET", province, headers=admin)
    hot = urls.ADMIN_HOT + f"?batch={OPEN_BATCH}&window=batch"
    await _check(api, responses.HotItems, "GET", hot, headers=admin)
    await _check(api, responses.Pipeline, "GET", urls.ADMIN_PIPELINE, headers=admin)
    await _check(api, responses.LoggedOut, "POST", urls.LOGOUT, headers=teacher)
