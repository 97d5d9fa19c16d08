"""Token revocation by account generation, against the real Redis and MariaDB: logout ends
every token of the account, across API processes, checked without MySQL per request; a
password change by `volreg admin` or an import ends older tokens too."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp.test_utils import TestClient

from schemas import urls
from service.core.ids import make_id
from service.core.passwords import Passwords
from service.core.settings import Settings
from service.main.wiring import create_staff_account
from service.storage.mysql_db import MySQLDatabase
from tests.conftest import ClientFactory
from tests.proxy import Proxy
from tests.staff_support import STAFF_PASSWORD
from tests.support import PASSWORD, login

Client = TestClient[Any, Any]


async def _candidate(db: MySQLDatabase, settings: Settings, seq: int) -> str:
    candidate_id = make_id(430102, "20070909", seq)
    hashed = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib).hash(PASSWORD)
    await db.upsert_candidates([(candidate_id, "Revoke", "430102001", hashed)])
    await db.upsert_exams({candidate_id: {"total_score": 1.0, "rank": 1, "subjects": {}}})
    return candidate_id


async def _until(check: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition never met"
        await asyncio.sleep(0.05)


async def test_logout_ends_every_token_of_the_account_in_every_process(
    make_client: ClientFactory, db: MySQLDatabase, settings: Settings
) -> None:
    first = await make_client(token_generation_local_ttl_s=0.2)
    second = await make_client(token_generation_local_ttl_s=0.2)
    candidate = await _candidate(db, settings, 1)
    phone, laptop = await login(first, candidate), await login(second, candidate)
    exam = urls.EXAM.format(candidate_id=candidate)
    for client, headers in ((first, phone), (second, laptop), (second, phone)):
        assert (await client.get(exam, headers=headers)).status == 200

    resp = await first.post(urls.LOGOUT, headers=phone)
    assert resp.status == 200 and (await resp.json())["status"] == "logged_out"
    gone = await first.get(exam, headers=laptop)  # this process knows at once
    assert gone.status == 401 and "revoked" in (await gone.json())["error"]["message"]

    async def revoked_in_second() -> bool:
        return (await second.get(exam, headers=laptop)).status == 401

    await _until(revoked_in_second)
    assert (await first.post(urls.LOGOUT, headers=phone)).status == 401
    # A new login works again, in both.
    fresh = await login(second, candidate)
    assert (await first.get(exam, headers=fresh)).status == 200
    assert (await second.get(exam, headers=fresh)).status == 200


async def test_requests_check_revocation_without_mysql(
    make_client: ClientFactory, db: MySQLDatabase, settings: Settings, mysql_proxy: Proxy
) -> None:
    candidate = await _candidate(db, settings, 2)
    warm = await make_client()
    headers = await login(warm, candidate)
    exam = urls.EXAM.format(candidate_id=candidate)
    assert (await warm.get(exam, headers=headers)).status == 200  # Redis holds both now
    cold = await make_client(mysql_dsn=mysql_proxy.url(settings.mysql_dsn), wait_broker=False)
    await mysql_proxy.cut()
    # A process that never asked MySQL anything, with MySQL unreachable: token checked.
    assert (await cold.get(exam, headers=headers)).status == 200


async def test_password_change_and_import_end_older_tokens(
    make_client: ClientFactory, db: MySQLDatabase, settings: Settings
) -> None:
    client = await make_client(token_generation_local_ttl_s=0.2, token_generation_redis_ttl_s=1)
    username = f"rev-{time.time_ns()}"
    await create_staff_account(settings, username, "teacher", "430102001", STAFF_PASSWORD)
    resp = await client.post(urls.LOGIN, json={"username": username, "password": STAFF_PASSWORD})
    old = {"Authorization": f"Bearer {(await resp.json())['token']}"}
    school = urls.SCHOOL_CANDIDATES.format(school="430102001")
    assert (await client.get(school, headers=old)).status == 200
    await create_staff_account(settings, username, "teacher", "430102001", "a-new-password")

    async def old_token_refused() -> bool:
        return (await client.get(school, headers=old)).status == 401

    await _until(old_token_refused)

    # A candidates import with a new password hash (or school) ends the candidate's tokens;
    # the same row imported again changes nothing.
    candidate = await _candidate(db, settings, 3)
    headers = await login(client, candidate)
    exam = urls.EXAM.format(candidate_id=candidate)
    row = await db.get_candidate(candidate)
    assert row is not None
    await db.upsert_candidates([(candidate, "Revoke", "430102001", row.password_hash)])
    await asyncio.sleep(1.5)
    assert (await client.get(exam, headers=headers)).status == 200
    rehashed = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib).hash("other")
    await db.upsert_candidates([(candidate, "Revoke", "430102001", rehashed)])

    async def candidate_refused() -> bool:
        return (await client.get(exam, headers=headers)).status == 401

    await _until(candidate_refused)
