"""The pipeline status the console shows, on the real servers: messages waiting per form
queue, dead letters, hot events waiting, the last reconcile run."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import aio_pika
from aiohttp.test_utils import TestClient

from schemas import urls
from service.core.names import names_of
from service.core.settings import Settings
from service.storage.mysql_db import MySQLDatabase
from tests.staff_support import ADMIN, TEACHER, staff_login
from tests.support import login

Client = TestClient[Any, Any]


async def test_pipeline_counts_dead_letters_and_shows_the_last_reconcile(
    api: Client, settings: Settings, db: MySQLDatabase
) -> None:
    admin = await staff_login(api, ADMIN)

    async def status() -> dict[str, Any]:
        resp = await api.get(urls.ADMIN_PIPELINE, headers=admin)
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body

    before = await status()
    names = names_of(settings)
    assert set(before["queues"]) == set(names.all_queues) and before["errors"] == {}
    assert before["waiting"] == sum(before["queues"].values())
    # A message parked in the dead-letter queue, and a reconcile run recorded.
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        dead = await channel.get_exchange(names.dead_letter_exchange)
        await dead.publish(aio_pika.Message(b"parked by a test"), routing_key="dead")
        started = datetime.now().replace(microsecond=0)
        await db.execute(
            "reconcile_record_run",
            "full", None, "repaired", started, 1234, 50, 2, 1, 1, 0, 0, None, None, None,
        )  # fmt: skip
        try:
            for _ in range(50):
                after = await status()
                if after["dead_letters"] > before["dead_letters"]:
                    break
                await asyncio.sleep(0.1)
            assert after["dead_letters"] == before["dead_letters"] + 1
            run = after["last_reconcile"]
            assert (run["mode"], run["outcome"], run["checked"], run["drifted"]) == (
                "full",
                "repaired",
                50,
                2,
            )
            assert datetime.fromisoformat(run["started_at"]).replace(tzinfo=None) == started
        finally:
            queue = await channel.get_queue(names.dead_letter_queue)
            message = await queue.get(fail=False)
            while message is not None and message.body != b"parked by a test":
                await message.nack(requeue=True)
                message = None
            if message is not None:
                await message.ack()


async def test_pipeline_is_for_admins(api: Client) -> None:
    for headers in ({}, await login(api), await staff_login(api, TEACHER)):
        resp = await api.get(urls.ADMIN_PIPELINE, headers=headers)
        assert resp.status in (401, 403)
