"""The save protocol end to end against real Redis, RabbitMQ and MariaDB."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from schemas.records import FormKey
from service.core import codec
from service.storage.mysql_db import MySQLDatabase
from service.storage.redis_cache import RedisCache
from tests.support import DEMO_ID, OPEN_BATCH, OTHER_ID, choices, form_url, login, wait_for_mysql

Client = TestClient[Any, Any]


async def test_save_then_read_back_and_row_in_mysql(api: Client, db: MySQLDatabase) -> None:
    headers = await login(api)
    body = {"choices": choices(3)}
    resp = await api.put(form_url(), json=body, headers=headers)
    assert resp.status == 200, await resp.text()
    saved = await resp.json()
    assert set(saved) == {"version", "updated_at"}

    resp = await api.get(form_url(), headers=headers)
    assert resp.status == 200
    read = await resp.json()
    assert read["choices"] == body["choices"]
    assert read["version"] == saved["version"]
    assert read["status"] == "saved"

    row = await wait_for_mysql(db, FormKey(DEMO_ID, OPEN_BATCH), saved["version"])
    assert row.version == saved["version"]
    assert codec.unpack(row.payload) == body["choices"]


async def test_versions_strictly_increase(api: Client) -> None:
    headers = await login(api)
    versions = []
    for salt in range(5):
        resp = await api.put(form_url(), json={"choices": choices(2, salt)}, headers=headers)
        versions.append((await resp.json())["version"])
    assert versions == sorted(versions) and len(set(versions)) == 5


async def test_concurrent_saves_converge_on_last_acknowledged(
    api: Client, db: MySQLDatabase, cache: RedisCache
) -> None:
    headers = await login(api, OTHER_ID)
    url = form_url(OTHER_ID)

    async def save(salt: int) -> tuple[int, list[Any]]:
        body = {"choices": choices(1 + salt % 7, salt)}
        resp = await api.put(url, json=body, headers=headers)
        assert resp.status == 200, await resp.text()
        return (await resp.json())["version"], body["choices"]

    acked = await asyncio.gather(*(save(i) for i in range(200)))
    versions = [v for v, _ in acked]
    assert len(set(versions)) == 200, "versions must be unique per form"
    last_version, last_choices = max(acked, key=lambda a: a[0])

    key = FormKey(OTHER_ID, OPEN_BATCH)
    in_redis = await cache.read(key)
    assert in_redis is not None and in_redis.version == last_version
    assert codec.unpack(in_redis.payload) == last_choices
    in_mysql = await wait_for_mysql(db, key, last_version)
    assert in_mysql.version == last_version
    assert codec.unpack(in_mysql.payload) == last_choices
    resp = await api.get(url, headers=headers)
    assert (await resp.json())["choices"] == last_choices


async def test_big_form_is_split_across_keys_and_shrinks_back(
    make_client: Any, consumer: None, settings: Any
) -> None:
    client = await make_client(chunk_bytes=64)
    headers = await login(client)
    big = {"choices": choices(96, 3)}
    resp = await client.put(form_url(), json=big, headers=headers)
    assert resp.status == 200
    assert (await (await client.get(form_url(), headers=headers)).json())["choices"] == big[
        "choices"
    ]
    small = {"choices": choices(1, 4)}
    resp = await client.put(form_url(), json=small, headers=headers)
    assert resp.status == 200
    assert (await (await client.get(form_url(), headers=headers)).json())["choices"] == small[
        "choices"
    ]
