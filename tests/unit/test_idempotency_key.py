"""A malformed Idempotency-Key is refused before anything is staged; a well-formed one of the
longest allowed length is accepted."""

from __future__ import annotations

import uuid

import pytest

from tests.bad_input import (
    Client,
    Known,
    expect_error,
    paths_of,
)
from tests.support import (
    choices,
    form_url,
    login,
)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("k" * 129, id="129-chars"),
        pytest.param("k" * 200, id="200-chars"),
        pytest.param("has space", id="space"),
        pytest.param("tab\there", id="tab"),
        pytest.param("", id="empty"),
    ],
)
async def test_malformed_idempotency_key_is_422(known: Known, key: str) -> None:
    headers = {**known.headers, "Idempotency-Key": key}
    resp = await known.client.put(known.url, json={"choices": choices(1, 8)}, headers=headers)
    error = await expect_error(resp, 422, "validation_failed")
    assert paths_of(error) == ["header.Idempotency-Key"], error


async def test_idempotency_key_of_128_visible_chars_is_accepted(api: Client) -> None:
    headers = {**(await login(api)), "Idempotency-Key": "~!" * 48 + uuid.uuid4().hex}
    assert len(headers["Idempotency-Key"]) == 128
    resp = await api.put(form_url(), json={"choices": choices(1, 8)}, headers=headers)
    assert resp.status == 200, await resp.text()
