"""The access log names the client and the request id; the request id travels in the broker
message into the consumer's log lines about that message."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from schemas import urls
from schemas.http import parse_form
from schemas.records import FormKey, Origin
from service.core import logs
from service.core.ids import make_id
from service.core.metrics import Metrics
from service.core.names import HEADER_REQUEST_ID, names_of
from service.core.settings import Settings
from service.forms.group_commit import FULL_COUNT, GroupPolicy, GroupPublisher
from service.storage.mysql_db import MySQLDatabase
from service.storage.rabbit import RabbitBroker
from service.storage.redis_cache import RedisCache
from tests.conftest import ClientFactory
from tests.harness import Harness, isolated
from tests.integration.test_group_commit import HeldBroker, flushes, same_queue_keys, until
from tests.support import OPEN_BATCH, captured, choices, form_url, login


async def test_access_log_has_client_address_and_request_id(
    make_client: ClientFactory, consumer: None
) -> None:
    client = await make_client(access_log_sample=1.0)
    headers = await login(client)
    with captured("volreg.http") as log:
        resp = await client.put(
            form_url(),
            json={"choices": choices(2, 3)},
            headers={**headers, "X-Request-Id": "req-abc-1", "X-Forwarded-For": "10.1.2.3"},
        )
        assert resp.status == 200
        await client.get(urls.LIVE)  # probes are never logged when they succeed
    [line] = [x for x in log.lines if x["msg"] == "request"]
    assert line["request_id"] == "req-abc-1"
    assert line["status"] == 200 and line["method"] == "PUT"
    assert line["client"] == "127.0.0.1"
    assert line["forwarded_for"] == "10.1.2.3"


async def test_sampling_off_still_logs_errors(make_client: ClientFactory) -> None:
    client = await make_client(access_log_sample=0.0)
    with captured("volreg.http") as log:
        assert (await client.get(urls.CATALOGUE_BATCHES)).status == 200
        assert (await client.get(form_url())).status == 401
    statuses = [x["status"] for x in log.lines if x["msg"] == "request"]
    assert statuses == [401]


async def test_request_id_reaches_the_consumer_log(
    settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    async with isolated(settings, db, cache) as harness:
        key = FormKey(make_id(330107, "20070707", 1), OPEN_BATCH)
        token = logs.request_id.set("req-to-consumer")  # what the middleware does per request
        try:
            saved = await harness.forms.save(
                key, parse_form({"choices": choices(1, 1)}), None, datetime.now()
            )
        finally:
            logs.request_id.reset(token)
        [delivery] = await harness.take(1)
        assert delivery.headers[HEADER_REQUEST_ID] == "req-to-consumer"
        with captured("service.forms.consumer", logging.DEBUG) as log:
            await harness.writer.apply([delivery])
        [line] = [x for x in log.lines if x["msg"] == "applied"]
        assert line["request_id"] == "req-to-consumer"
        assert line["version"] == saved.version


async def _save_as(harness: Harness, key: FormKey, request_id: str) -> int:
    origin = Origin("127.0.0.1", request_id, key.candidate_id, "candidate")
    form = parse_form({"choices": choices(1, 2)})
    return (await harness.forms.save(key, form, None, datetime.now(), origin)).version


async def test_each_record_of_a_batch_message_keeps_its_request_id(
    settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    """Two saves group-committed into one message: the message's headers cannot name both
    requests, so each frame carries its own, and the consumer's line about each record names
    the request that saved it."""
    names = names_of(settings)
    metrics = Metrics()
    holder: list[HeldBroker] = []

    def group(broker: RabbitBroker) -> GroupPublisher:
        holder.append(HeldBroker(broker))
        return GroupPublisher(
            holder[0], names.queue_index, GroupPolicy(max_records=2, window_ms=60_000), metrics
        )

    async with isolated(settings, db, cache, group) as harness:
        held = holder[0]
        first, *grouped = same_queue_keys(names, 3, area=330108)
        saves = [asyncio.create_task(_save_as(harness, first, "req-alone"))]
        await asyncio.wait_for(held.reached.wait(), 10)
        saves += [
            asyncio.create_task(_save_as(harness, k, f"req-grouped-{i}"))
            for i, k in enumerate(grouped)
        ]
        await until(lambda: flushes(metrics, FULL_COUNT) == 1)
        held.gate.set()
        async with asyncio.timeout(10):
            await asyncio.gather(*saves)
        deliveries = await harness.take(2)
        [batch] = [d for d in deliveries if d.headers["x-records"] == 2]
        assert HEADER_REQUEST_ID not in batch.headers
        assert len(harness.writer.unacked) == 2  # held until settled
        with captured("service.forms.consumer", logging.DEBUG) as log:
            await harness.writer.apply(deliveries)
        assert len(harness.writer.unacked) == 0
        applied = {x["candidate_id"]: x["request_id"] for x in log.lines if x["msg"] == "applied"}
        assert applied == {
            first.candidate_id: "req-alone",
            grouped[0].candidate_id: "req-grouped-0",
            grouped[1].candidate_id: "req-grouped-1",
        }
