"""Save history on the real servers: the consumer records every acknowledged save with who
sent it and from where; the candidate, their school's teachers and admins read it, paged."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from schemas import urls
from schemas.records import STATUS_SAVED, FormKey, FormRecord, Origin
from service.core import codec
from service.core.ports import Batch
from service.filing.mysql import FilingTables
from service.storage.mysql_db import MySQLDatabase
from tests.conftest import ClientFactory
from tests.staff_support import ADMIN, OTHER_TEACHER, TEACHER, staff_login
from tests.support import DEMO_ID, OTHER_ID, choices, login, wait_for_mysql

Client = TestClient[Any, Any]


@pytest.fixture
async def batch(db: MySQLDatabase) -> str:
    code = f"hist-{uuid.uuid4().hex[:6]}"
    now = datetime.now()
    await db.upsert_batch(Batch(code, "History", now - timedelta(days=1), now + timedelta(days=9)))
    return code


def _url(batch: str, candidate_id: str = DEMO_ID) -> str:
    return urls.FORM_HISTORY.format(candidate_id=candidate_id, batch=batch)


async def test_every_save_is_kept_with_who_and_where(
    api: Client, make_client: ClientFactory, db: MySQLDatabase, batch: str
) -> None:
    headers = await login(api)
    sent = [choices(1, 1), choices(2, 2), choices(3, 3)]
    versions = []
    for i, body in enumerate(sent):
        resp = await api.put(
            urls.FORM.format(candidate_id=DEMO_ID, batch=batch),
            json={"choices": body},
            headers={**headers, "X-Request-Id": f"req-{batch}-{i}"},
        )
        assert resp.status == 200, await resp.text()
        versions.append((await resp.json())["version"])
    await wait_for_mysql(db, FormKey(DEMO_ID, batch), versions[-1])
    resp = await api.get(_url(batch), headers=headers)
    assert resp.status == 200, await resp.text()
    page = await resp.json()
    entries = page["entries"]
    assert [e["version"] for e in entries] == versions[::-1]  # newest first
    assert [e["choices"] for e in entries] == sent[::-1]
    assert [e["request_id"] for e in entries] == [f"req-{batch}-{i}" for i in (2, 1, 0)]
    assert {(e["subject"], e["role"], e["status"]) for e in entries} == {
        (DEMO_ID, "candidate", STATUS_SAVED)
    }
    assert all(e["client"] == "127.0.0.1" and e["saved_at"] for e in entries)
    # Behind a trusted proxy: the address it appended to X-Forwarded-For.
    behind = await make_client(trusted_proxies="127.0.0.1")
    proxied = await behind.put(
        urls.FORM.format(candidate_id=DEMO_ID, batch=batch),
        json={"choices": choices(1, 9)},
        headers={**await login(behind), "X-Forwarded-For": "203.0.113.9, 198.51.100.7"},
    )
    assert proxied.status == 200
    newest = (await proxied.json())["version"]
    await wait_for_mysql(db, FormKey(DEMO_ID, batch), newest)
    latest = await (await api.get(_url(batch), params={"limit": "1"}, headers=headers)).json()
    assert latest["entries"][0]["client"] == "198.51.100.7"
    versions.append(newest)
    assert page["next_cursor"] is None
    # Paged one by one (the proxied save included).
    seen, cursor = [], ""
    for _ in range(5):
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        body = await (await api.get(_url(batch), params=params, headers=headers)).json()
        seen += [e["version"] for e in body["entries"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == versions[::-1]
    # The school's teacher and admins read it too.
    for who in (TEACHER, ADMIN):
        resp = await api.get(_url(batch), headers=await staff_login(api, who))
        assert resp.status == 200
        assert len((await resp.json())["entries"]) == 4


async def test_a_redelivered_save_is_kept_once(db: MySQLDatabase, batch: str) -> None:
    origin = Origin("10.0.0.7", "r-1", OTHER_ID, "candidate")
    payload = codec.compress(b'[{"institution":"10001","majors":["080901"]}]')
    record = FormRecord(OTHER_ID, batch, 5, 5, STATUS_SAVED, payload, origin)
    tables = FilingTables(db)
    await tables.record_saves([record])
    await tables.record_saves([record, record])
    rows = await tables.history_page(OTHER_ID, batch, 2**62, 10)
    assert len(rows) == 1 and rows[0][3] == "10.0.0.7"


@pytest.mark.parametrize(
    ("who", "candidate", "params", "status"),
    [
        (None, DEMO_ID, {}, 401),
        ("candidate", OTHER_ID, {}, 403),  # someone else's history
        (OTHER_TEACHER, DEMO_ID, {}, 403),  # a teacher of another school
        (ADMIN, DEMO_ID, {"limit": "0"}, 422),
        (ADMIN, DEMO_ID, {"cursor": "abc"}, 422),
        (ADMIN, "11010519491231002Y", {}, 422),
    ],
)
async def test_history_refusals(
    api: Client, batch: str, who: str | None, candidate: str, params: dict[str, str], status: int
) -> None:
    if who == "candidate":
        headers = await login(api)
    else:
        headers = await staff_login(api, who) if who else {}
    resp = await api.get(_url(batch, candidate), params=params, headers=headers)
    assert resp.status == status, await resp.text()
    assert "error" in await resp.json()


async def test_unknown_batch_is_404(api: Client) -> None:
    resp = await api.get(_url("no-such-batch"), headers=await login(api))
    assert resp.status == 404
