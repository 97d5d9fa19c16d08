"""Metrics as a scrape sees them: every worker of `serve --workers N` summed, the consumer's on
its own port (queue depths, lag, dead letters), the save's steps timed in the API."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import datetime

from schemas import urls
from schemas.http import parse_form
from schemas.records import FormKey
from service.core.ids import make_id
from service.core.settings import Settings
from service.http import keys
from service.storage.mysql_db import MySQLDatabase
from service.storage.redis_cache import RedisCache
from tests.conftest import ClientFactory
from tests.harness import isolated
from tests.processes import free_port, get, start, stop, wait_up
from tests.support import (
    DEMO_ID,
    OPEN_BATCH,
    admin_headers,
    choices,
    form_url,
    login,
    settings_env,
    wait_for_mysql,
)

_LIVE = 'volreg_http_requests_total{method="GET",route="/health/live",status="200"}'


def _value(text: str, sample: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_a_scrape_of_serve_with_workers_sums_every_worker(settings: Settings) -> None:
    port = free_port()
    env = settings_env(dataclasses.replace(settings, http_port=port))
    proc = start(env, "serve", "--workers", "2")
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_up(base + urls.READY, proc)
        requests = 40
        for _ in range(requests):
            assert (await get(base + urls.LIVE))[0] == 200
        # Whichever worker answers the scrape, it reports all of them.
        for _ in range(6):
            status, text = await get(base + urls.METRICS, admin_headers(settings))
            assert status == 200
            assert _value(text, _LIVE) == requests, text
            assert "volreg_consumed_messages" not in text  # the consumer's, not the API's
    finally:
        assert stop(proc) == 0


async def test_the_api_times_each_step_of_a_save(
    make_client: ClientFactory, consumer: None
) -> None:
    client = await make_client()
    headers = await login(client)
    for salt in range(3):
        resp = await client.put(form_url(), json={"choices": choices(2, salt)}, headers=headers)
        assert resp.status == 200, await resp.text()
    metrics = await client.get(urls.METRICS, headers=admin_headers(client.app[keys.SETTINGS]))
    text = await metrics.text()
    for step in ("stage", "publish", "commit"):
        count = _value(text, f'volreg_save_stage_seconds_count{{stage="{step}"}}')
        assert count is not None and count >= 3, step
    assert _value(text, "process_resident_memory_bytes") is not None  # the process collector


async def test_refused_logins_and_cache_lookups_are_counted(make_client: ClientFactory) -> None:
    client = await make_client()
    admin = admin_headers(client.app[keys.SETTINGS])

    async def scrape() -> str:
        resp = await client.get(urls.METRICS, headers=admin)
        assert resp.status == 200
        return await resp.text()

    def failures(text: str, kind: str, reason: str) -> float:
        sample = f'volreg_login_failures_total{{kind="{kind}",reason="{reason}"}}'
        return _value(text, sample) or 0.0

    before = await scrape()
    wrong = {"candidate_id": DEMO_ID, "password": "not-the-password"}
    assert (await client.post(urls.LOGIN, json=wrong)).status == 401
    staff = {"username": "nobody-at-all", "password": "not-the-password"}
    assert (await client.post(urls.LOGIN, json=staff)).status == 401
    bad_digit = {"candidate_id": "110105194912310021", "password": "x"}  # wrong check digit
    assert (await client.post(urls.LOGIN, json=bad_digit)).status == 401
    not_an_id = {"candidate_id": "12345", "password": "x"}
    assert (await client.post(urls.LOGIN, json=not_an_id)).status == 422
    await login(client)  # a success counts nothing
    institution = urls.CATALOGUE_INSTITUTION.format(code="10001")
    for _ in range(3):
        assert (await client.get(institution)).status == 200
    after = await scrape()
    for kind, reason, count in (
        ("candidate", "unauthorized", 2),
        ("staff", "unauthorized", 1),
        ("candidate", "validation_failed", 1),
    ):
        assert failures(after, kind, reason) == failures(before, kind, reason) + count, reason
    hits = 'volreg_cache_hits_total{cache="catalogue"}'
    misses = 'volreg_cache_misses_total{cache="catalogue"}'
    lookups = [(_value(x, hits) or 0) + (_value(x, misses) or 0) for x in (before, after)]
    assert lookups[1] >= lookups[0] + 3  # each read asks the per-process cache first
    assert (_value(after, hits) or 0) > (_value(before, hits) or 0)  # the repeats hit


async def test_the_consumer_serves_its_own_metrics(
    settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    async with isolated(settings, db, cache, consume=False) as harness:
        port = free_port()
        scrape_token = "c0n5umer-5crape-7oken-1f3a5c7e9b1d3f5a7c9e"
        consumer_settings = dataclasses.replace(
            harness.settings,
            consumer_http_port=port,
            consumer_stats_interval_s=0.2,
            metrics_token=scrape_token,
        )
        scrape = {"Authorization": f"Bearer {scrape_token}"}
        keys = [FormKey(make_id(440107, "20070705", i), OPEN_BATCH) for i in range(20)]
        versions = {}
        for n, key in enumerate(keys):  # queued before any consumer runs
            saved = await harness.forms.save(
                key, parse_form({"choices": choices(2, n)}), None, datetime.now()
            )
            versions[key] = saved.version
        proc = start(settings_env(consumer_settings), "consume")
        base = f"http://127.0.0.1:{port}"
        try:
            await wait_up(base + urls.READY, proc)
            for key, version in versions.items():
                await wait_for_mysql(db, key, version)
            queue = f"{harness.settings.queue_prefix}.forms.q0"
            deadline = time.monotonic() + 20
            status, _ = await get(base + urls.METRICS)
            assert status == 401  # the metrics token is set: a scrape must send it
            status, _ = await get(base + urls.METRICS, {"Authorization": "Bearer wrong"})
            assert status == 401
            while True:  # the queue depths are sampled every consumer_stats_interval_s
                _, text = await get(base + urls.METRICS, scrape)
                applied = _value(text, 'volreg_consumed_messages_total{outcome="applied"}')
                depth = _value(text, f'volreg_queue_messages{{queue="{queue}"}}')
                if applied == len(keys) and depth == 0:
                    break
                assert time.monotonic() < deadline, text
                await asyncio.sleep(0.2)
            assert _value(text, "volreg_consume_delay_seconds_count") == len(keys)
            lag = _value(text, "volreg_consumer_lag_seconds")
            assert lag is not None and lag > 0
            assert _value(text, "volreg_dead_letter_messages") == 0
            # Every delivery settled: nothing is held unacked.
            assert _value(text, "volreg_consumer_oldest_unacked_seconds") == 0
            assert _value(text, "volreg_consume_upsert_seconds_count") is not None
            assert "volreg_http_requests" not in text  # the API's, not the consumer's
        finally:
            assert stop(proc) == 0
