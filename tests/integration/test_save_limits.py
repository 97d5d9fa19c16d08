"""Per-candidate save limits against the real Redis, RabbitMQ and MariaDB: saves per window
(429 + Retry-After, nothing published or visible) and live Idempotency-Keys per candidate."""

from __future__ import annotations

from itertools import count
from typing import Any

from aiohttp.test_utils import TestClient

from service.core.ids import make_id
from service.core.passwords import Passwords
from service.core.settings import Settings
from service.storage.mysql_db import MySQLDatabase
from tests.conftest import ClientFactory
from tests.support import PASSWORD, choices, form_url, login

Client = TestClient[Any, Any]
_serial = count(1)


async def _candidate(db: MySQLDatabase, settings: Settings) -> str:
    candidate_id = make_id(420102, "20070404", next(_serial))
    hashed = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib).hash(PASSWORD)
    await db.upsert_candidates([(candidate_id, "Limits", "420102001", hashed)])
    return candidate_id


async def test_saves_beyond_the_limit_are_429_and_leave_nothing(
    make_client: ClientFactory, consumer: None, db: MySQLDatabase, settings: Settings
) -> None:
    client = await make_client(save_rate_limit=3, save_rate_window_s=30)
    candidate = await _candidate(db, settings)
    headers = await login(client, candidate)
    url = form_url(candidate)
    versions = []
    for salt in range(3):
        resp = await client.put(
            url,
            json={"choices": choices(2, salt)},
            headers={**headers, "Idempotency-Key": f"k{salt}"},
        )
        assert resp.status == 200, await resp.text()
        versions.append((await resp.json())["version"])

    refused = await client.put(url, json={"choices": choices(4, 9)}, headers=headers)
    assert refused.status == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 30
    assert (await refused.json())["error"]["code"] == "too_many_requests"
    held = await (await client.get(url, headers=headers)).json()
    assert held["version"] == versions[-1] and held["choices"] == choices(2, 2)

    # A retry of an acknowledged save is no new save: its answer comes back as before.
    replay = await client.put(
        url, json={"choices": choices(2, 1)}, headers={**headers, "Idempotency-Key": "k1"}
    )
    assert replay.status == 200 and (await replay.json())["version"] == versions[1]

    # Another candidate has a budget of its own.
    other = await _candidate(db, settings)
    other_headers = await login(client, other)
    resp = await client.put(form_url(other), json={"choices": choices(1)}, headers=other_headers)
    assert resp.status == 200


async def test_live_idempotency_keys_per_candidate_are_bounded(
    make_client: ClientFactory, consumer: None, db: MySQLDatabase, settings: Settings
) -> None:
    client = await make_client(save_rate_limit=0, idempotency_keys_max=3)
    candidate = await _candidate(db, settings)
    headers = await login(client, candidate)
    url = form_url(candidate)

    async def save(key: str | None, salt: int) -> Any:
        extra = {"Idempotency-Key": key} if key else {}
        return await client.put(
            url, json={"choices": choices(1, salt)}, headers={**headers, **extra}
        )

    assert [(await save(f"key-{i}", i)).status for i in range(3)] == [200, 200, 200]
    fourth = await save("key-3", 3)
    assert fourth.status == 429 and int(fourth.headers["Retry-After"]) >= 1
    assert "Idempotency-Key" in (await fourth.json())["error"]["message"]
    # Replays of live keys and saves without a key still work.
    assert (await save("key-0", 0)).status == 200
    assert (await save(None, 7)).status == 200
