"""Bad input that only the servers can judge: an Idempotency-Key reused (the same body is saved
once, another body is refused) and scoped to one form; claimed in Redis by stage.lua."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from service.core.ports import Batch
from service.storage.mysql_db import MySQLDatabase
from tests.bad_input import (
    Known,
    expect_error,
    paths_of,
)
from tests.conftest import ClientFactory
from tests.support import (
    DEMO_ID,
    OPEN_BATCH,
    choices,
    form_url,
    login,
)

# --------------------------------------------------------------------------------- idempotency


def _idem() -> str:
    return f"idem-{uuid.uuid4().hex}"


async def test_same_idempotency_key_and_body_saves_once(known: Known) -> None:
    headers = {**known.headers, "Idempotency-Key": _idem()}
    body = {"choices": choices(4, 9)}
    first = await known.client.put(known.url, json=body, headers=headers)
    assert first.status == 200, await first.text()
    second = await known.client.put(known.url, json=body, headers=headers)
    assert second.status == 200, await second.text()
    assert await first.json() == await second.json()
    # Only one save happened: the stored version is the first save's, not a newer one.
    known.version = (await first.json())["version"]
    known.choices = body["choices"]
    await known.assert_unchanged()


async def test_same_idempotency_key_with_another_body_is_422(known: Known) -> None:
    headers = {**known.headers, "Idempotency-Key": _idem()}
    first = await known.client.put(known.url, json={"choices": choices(2, 1)}, headers=headers)
    assert first.status == 200, await first.text()
    known.version = (await first.json())["version"]
    known.choices = choices(2, 1)
    resp = await known.client.put(known.url, json={"choices": choices(2, 2)}, headers=headers)
    error = await expect_error(resp, 422, "validation_failed")
    assert paths_of(error) == ["header.Idempotency-Key"], error
    await known.assert_unchanged()


async def test_idempotency_key_is_not_shared_across_batches(
    make_client: ClientFactory, consumer: None, db: MySQLDatabase
) -> None:
    """The key names one request: the same key and body for another batch is another save,
    not a replay of the first batch's result."""
    now = datetime.now()
    second = "idem-scope-2"
    await db.upsert_batch(
        Batch(second, "Second", now - timedelta(days=1), now + timedelta(days=30))
    )
    client = await make_client()  # a new app reads the catalogue afresh
    headers = {**(await login(client)), "Idempotency-Key": _idem()}
    body = {"choices": choices(2, 3)}
    first = await client.put(form_url(DEMO_ID, OPEN_BATCH), json=body, headers=headers)
    assert first.status == 200, await first.text()
    resp = await client.put(form_url(DEMO_ID, second), json=body, headers=headers)
    assert resp.status in (200, 422), await resp.text()
    if resp.status == 200:
        saved = await resp.json()
        read = await client.get(form_url(DEMO_ID, second), headers=headers)
        assert read.status == 200, f"acknowledged {saved} but nothing saved: {await read.text()}"
        assert (await read.json())["version"] == saved["version"]
