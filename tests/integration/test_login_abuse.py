"""Login abuse against the real Redis and MariaDB: concurrent guesses test at most the limit,
limits are per client address (a third party cannot lock a candidate out, a forged
X-Forwarded-For changes nothing), spraying many accounts is limited, refused attempts cost no
hashing, and a full hashing queue answers 503 + Retry-After."""

from __future__ import annotations

import asyncio
from itertools import count
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from schemas import urls
from service.core.ids import make_id
from service.core.names import names_of
from service.core.passwords import Passwords
from service.core.settings import Settings
from service.storage.mysql_db import MySQLDatabase
from service.storage.redis_cache import RedisCache
from tests.conftest import ClientFactory
from tests.support import PASSWORD

Client = TestClient[Any, Any]
_serial = count(1)


def _unknown_id() -> str:
    return make_id(460103, "20070303", next(_serial))


async def _candidate(db: MySQLDatabase, settings: Settings) -> str:
    candidate_id = make_id(460102, "20070202", next(_serial))
    hashed = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib).hash(PASSWORD)
    await db.upsert_candidates([(candidate_id, "Abuse", "460102001", hashed)])
    return candidate_id


async def _login(
    client: Client, candidate_id: str, password: str, forwarded: str | None = None
) -> ClientResponse:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    body = {"candidate_id": candidate_id, "password": password}
    resp = await client.post(urls.LOGIN, json=body, headers=headers)
    await resp.read()
    return resp


async def test_concurrent_wrong_guesses_test_at_most_the_limit(
    make_client: ClientFactory, db: MySQLDatabase, settings: Settings
) -> None:
    client = await make_client(login_failures_limit=5, login_failures_window_s=60)
    victim = await _candidate(db, settings)
    answers = await asyncio.gather(*(_login(client, victim, f"guess-{i}") for i in range(40)))
    statuses = sorted(r.status for r in answers)
    assert statuses.count(401) <= 5, statuses
    assert statuses.count(429) >= 35 and set(statuses) <= {401, 429}, statuses
    assert all(int(r.headers["Retry-After"]) >= 1 for r in answers if r.status == 429)


async def test_a_third_party_cannot_lock_a_candidate_out(
    make_client: ClientFactory, db: MySQLDatabase, settings: Settings
) -> None:
    client = await make_client(
        login_failures_limit=3, login_failures_window_s=60, trusted_proxies="127.0.0.1/32"
    )
    victim = await _candidate(db, settings)
    attacker = [(await _login(client, victim, "wrong", "203.0.113.5")).status for _ in range(5)]
    assert attacker == [401, 401, 401, 429, 429]
    # The attacker is locked out even with the right password ...
    assert (await _login(client, victim, PASSWORD, "203.0.113.5")).status == 429
    # ... the candidate, from their own address behind the same proxy, is not.
    assert (await _login(client, victim, PASSWORD, "198.51.100.7")).status == 200


async def test_forged_forwarded_for_changes_nothing(
    make_client: ClientFactory, db: MySQLDatabase, settings: Settings
) -> None:
    # No trusted proxy: the header is the client's own words and is ignored.
    untrusted = await make_client(login_failures_limit=3, login_failures_window_s=60)
    victim = await _candidate(db, settings)
    statuses = [
        (await _login(untrusted, victim, "wrong", f"198.51.100.{i}")).status for i in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]

    # Behind a trusted proxy only the right-most untrusted hop counts: a client prepending
    # addresses of its own still is the same client.
    proxied = await make_client(
        login_failures_limit=3, login_failures_window_s=60, trusted_proxies="127.0.0.1"
    )
    other = await _candidate(db, settings)
    chains = [f"10.9.8.{i}, 192.0.2.44" for i in range(5)]
    assert [(await _login(proxied, other, "wrong", c)).status for c in chains] == [
        401,
        401,
        401,
        429,
        429,
    ]


async def test_spraying_many_accounts_from_one_address_is_limited(
    make_client: ClientFactory, db: MySQLDatabase, settings: Settings
) -> None:
    client = await make_client(
        login_failures_limit=10,
        login_client_failures_limit=5,
        login_failures_window_s=60,
        trusted_proxies="127.0.0.1",
    )
    sprayed = [
        (await _login(client, _unknown_id(), "123456", "192.0.2.9")).status for _ in range(8)
    ]
    assert sprayed == [401] * 5 + [429] * 3
    victim = await _candidate(db, settings)
    assert (await _login(client, victim, PASSWORD, "192.0.2.10")).status == 200


async def test_refused_attempts_cost_no_hashing_and_a_full_queue_is_503(
    make_client: ClientFactory, db: MySQLDatabase, settings: Settings
) -> None:
    # argon2 slow enough (tens of ms per check) that concurrent logins pile up in the queue.
    client = await make_client(
        argon2_time_cost=3,
        argon2_memory_kib=64 * 1024,
        login_hash_workers=1,
        login_hash_queue=1,
        login_failures_limit=2,
        login_client_failures_limit=0,
        login_failures_window_s=60,
        trusted_proxies="127.0.0.1",
    )
    # Distinct accounts and addresses: only the hashing queue can refuse them.
    answers = await asyncio.gather(
        *(_login(client, _unknown_id(), "x", f"192.0.2.{100 + i}") for i in range(12))
    )
    statuses = [r.status for r in answers]
    assert set(statuses) == {401, 503}, statuses
    assert 2 <= statuses.count(401) < 12, statuses
    busy = [r for r in answers if r.status == 503]
    assert all(r.headers["Retry-After"] for r in busy)
    assert {(await r.json())["error"]["code"] for r in busy} == {"login_busy"}

    # Locked out: a burst of attempts is refused by Redis alone, none reaches the queue
    # (which would answer some of them 503).
    victim = await _candidate(db, settings)
    for _ in range(2):
        assert (await _login(client, victim, "wrong", "192.0.2.200")).status == 401
    burst = await asyncio.gather(*(_login(client, victim, "x", "192.0.2.200") for _ in range(20)))
    assert [r.status for r in burst] == [429] * 20


async def test_the_global_login_rate_is_shared_by_every_process(
    make_client: ClientFactory, settings: Settings, cache: RedisCache
) -> None:
    # Two API instances with state of their own (hashing queues, caches), one Redis: the
    # limit holds for both together, however the attempts are spread over them.
    limits: dict[str, Any] = {
        "login_global_limit": 6,
        "login_global_window_s": 60,
        "login_failures_limit": 10,
        "login_client_failures_limit": 0,
        "login_hash_queue": 64,
        "trusted_proxies": "127.0.0.1",
    }
    first, second = await make_client(**limits), await make_client(**limits)
    # A window of this run's other tests (the default 1 s one) must not be held already.
    await cache.client.delete(names_of(settings).login_global_key())
    answers = await asyncio.gather(
        *(
            _login(first if i % 2 else second, _unknown_id(), "x", f"192.0.2.{i + 1}")
            for i in range(24)
        )
    )
    statuses = sorted(r.status for r in answers)
    # Distinct addresses and accounts: only the global rate refuses; the window (60 s) does
    # not end during the burst, so exactly the limit is admitted.
    assert statuses == [401] * 6 + [503] * 18, statuses
    busy = [r for r in answers if r.status == 503]
    assert {(await r.json())["error"]["code"] for r in busy} == {"login_busy"}
    assert all(1 <= int(r.headers["Retry-After"]) <= 60 for r in busy)
    await cache.client.delete(names_of(settings).login_global_key())
