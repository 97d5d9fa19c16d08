"""What a retry with the same Idempotency-Key gets, on the real Redis and broker: the first
result even after the window closed, 503 + Retry-After while the first is pending, and no
second save after a confirm that never came (the first may yet be applied)."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import pytest

from schemas import messages
from schemas.http import parse_form
from schemas.records import FormKey, FormRecord
from service.core.errors import (
    BrokerUnavailable,
    PublishUncertain,
    RequestInProgress,
    WindowClosed,
)
from service.core.ids import make_id
from service.core.ports import Publisher
from service.core.settings import Settings
from service.forms.save import payload_of
from service.storage.mysql_db import MySQLDatabase
from service.storage.redis_cache import RedisCache
from tests.conftest import ClientFactory
from tests.harness import isolated
from tests.integration.test_recovery import SlowProxy
from tests.support import DEMO_ID, OPEN_BATCH, choices, form_url, login

NOW = datetime.now()
AFTER_CLOSE = NOW + timedelta(days=60)  # OPEN_BATCH closes 30 days from the session's start


def _key(n: int) -> FormKey:
    return FormKey(make_id(330106, "20070706", n), OPEN_BATCH)


async def test_a_retry_after_the_window_closed_gets_the_first_result(
    settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    async with isolated(settings, db, cache) as harness:
        form = parse_form({"choices": choices(2, 1)})
        first = await harness.forms.save(_key(1), form, "retry-1", NOW)
        # The answer was lost; the client retries once the window has closed.
        again = await harness.forms.save(_key(1), form, "retry-1", AFTER_CLOSE)
        assert again == first
        with pytest.raises(WindowClosed):  # a new save is refused, as before
            await harness.forms.save(_key(1), form, "retry-2", AFTER_CLOSE)
        with pytest.raises(WindowClosed):
            await harness.forms.save(_key(1), form, None, AFTER_CLOSE)
        await harness.take(1)  # one message: the first save's


async def test_pending_answers_503_with_retry_after(
    make_client: ClientFactory, consumer: None, cache: RedisCache
) -> None:
    client = await make_client()
    headers = await login(client)
    body = {"choices": choices(2, 7)}
    key = FormKey(DEMO_ID, OPEN_BATCH)
    fingerprint = hashlib.sha256(payload_of(parse_form(body))).hexdigest()[:32]
    # Another request with this key is in flight: staged, not yet confirmed.
    await cache.stage(key, "in-flight-1", fingerprint)
    headers["Idempotency-Key"] = "in-flight-1"
    resp = await client.put(form_url(), json=body, headers=headers)
    assert resp.status == 503, await resp.text()
    assert resp.headers["Retry-After"] == "1"
    assert (await resp.json())["error"]["code"] == "idempotency_in_progress"


async def test_no_confirm_keeps_the_key_and_the_first_message_is_applied_once(
    settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    target = urlsplit(settings.amqp_url)
    proxy = SlowProxy(target.hostname or "127.0.0.1", target.port or 5672, delay_s=4.0)
    await proxy.start()
    slow_url = settings.amqp_url.replace(
        f"{target.hostname}:{target.port}", f"127.0.0.1:{proxy.port}"
    )
    slow = dataclasses.replace(settings, amqp_url=slow_url)
    try:
        async with isolated(slow, db, cache) as harness:
            form = parse_form({"choices": choices(3, 2)})
            proxy.slow = True  # confirms arrive after the broker timeout (3 s)
            with pytest.raises(PublishUncertain) as caught:
                await harness.forms.save(_key(2), form, "unconfirmed-1", NOW)
            assert caught.value.status == 503
            assert caught.value.code == "broker_unconfirmed"
            # The retry must not save a second time while the first may still be applied.
            with pytest.raises(RequestInProgress):
                await harness.forms.save(_key(2), form, "unconfirmed-1", NOW)
            # The broker did get it: a consumer applies that version.
            [delivery] = await harness.take(1, timeout=15)
            record = messages.decode(delivery.headers, delivery.body)
            assert record.key == _key(2)
            proxy.slow = False
            await harness.assert_no_more()
    finally:
        await proxy.close()


class _Refusing:
    """A broker link that is down before anything was sent."""

    def __init__(self, inner: Publisher) -> None:
        self.inner = inner
        self.down = True

    async def publish(self, record: FormRecord) -> None:
        if self.down:
            raise BrokerUnavailable
        await self.inner.publish(record)

    async def ping(self) -> None:
        await self.inner.ping()


async def test_not_sent_releases_the_key_so_the_retry_saves(
    settings: Settings, db: MySQLDatabase, cache: RedisCache
) -> None:
    gate: list[_Refusing] = []

    def wrap(inner: Publisher) -> Publisher:
        gate.append(_Refusing(inner))
        return gate[0]

    async with isolated(settings, db, cache, wrap=wrap) as harness:
        form = parse_form({"choices": choices(1, 3)})
        with pytest.raises(BrokerUnavailable) as caught:
            await harness.forms.save(_key(3), form, "not-sent-1", NOW)
        assert not isinstance(caught.value, PublishUncertain)
        gate[0].down = False
        saved = await harness.forms.save(_key(3), form, "not-sent-1", NOW)
        [delivery] = await harness.take(1)
        assert messages.decode(delivery.headers, delivery.body).version == saved.version
