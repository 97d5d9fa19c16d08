"""Failed logins are counted per account in Redis; past the limit the account answers 429."""

from __future__ import annotations

from schemas import urls
from service.core.ids import make_id
from service.core.passwords import Passwords
from service.core.settings import Settings
from service.storage.mysql_db import MySQLDatabase
from tests.conftest import ClientFactory
from tests.proxy import Proxy
from tests.support import OTHER_ID, PASSWORD, RUN


async def _new_candidate(db: MySQLDatabase, settings: Settings, sequence: int) -> str:
    candidate_id = make_id(370102, "20070909", sequence)
    hashed = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib).hash(PASSWORD)
    await db.upsert_candidates([(candidate_id, "Limit", "370102001", hashed)])
    return candidate_id


async def test_too_many_failures_lock_only_that_account(
    make_client: ClientFactory, db: MySQLDatabase, settings: Settings
) -> None:
    client = await make_client(login_failures_limit=3, login_failures_window_s=30)
    victim = await _new_candidate(db, settings, 11)
    for _ in range(3):
        resp = await client.post(urls.LOGIN, json={"candidate_id": victim, "password": "wrong"})
        assert resp.status == 401
    resp = await client.post(urls.LOGIN, json={"candidate_id": victim, "password": PASSWORD})
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "30"
    assert (await resp.json())["error"]["code"] == "too_many_requests"

    resp = await client.post(urls.LOGIN, json={"candidate_id": OTHER_ID, "password": PASSWORD})
    assert resp.status == 200

    staff = {"username": f"nobody-{RUN}", "password": "guess"}
    statuses = [(await client.post(urls.LOGIN, json=staff)).status for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


async def test_successful_logins_are_not_counted(
    make_client: ClientFactory, db: MySQLDatabase, settings: Settings
) -> None:
    client = await make_client(login_failures_limit=2, login_failures_window_s=30)
    regular = await _new_candidate(db, settings, 12)
    body = {"candidate_id": regular, "password": PASSWORD}
    statuses = [(await client.post(urls.LOGIN, json=body)).status for _ in range(6)]
    assert statuses == [200] * 6


async def test_with_redis_down_logins_still_work(
    make_client: ClientFactory, db: MySQLDatabase, settings: Settings, redis_proxy: Proxy
) -> None:
    client = await make_client(
        redis_url=redis_proxy.url(settings.redis_url), login_failures_limit=1
    )
    candidate = await _new_candidate(db, settings, 13)
    await redis_proxy.cut()
    wrong = {"candidate_id": candidate, "password": "wrong"}
    assert (await client.post(urls.LOGIN, json=wrong)).status == 401
    right = {"candidate_id": candidate, "password": PASSWORD}
    assert (await client.post(urls.LOGIN, json=right)).status == 200
