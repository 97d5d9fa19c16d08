"""Bad input: helpers and the ``known`` fixture (a form saved before a bad request, unchanged
after it). A plugin of tests/conftest.py, so each tier runs it on its own ``api``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from service.core.ids import make_id
from tests.support import (
    DEMO_ID,
    choices,
    form_url,
    login,
)

Client = TestClient[Any, Any]
Headers = dict[str, str]

KNOWN = {"choices": choices(3, 7)}
UNKNOWN_ID = make_id(110105, "20000101", 999)  # a valid ID nobody registered
BAD_CHECK_ID = DEMO_ID[:17] + "1"  # DEMO_ID's check digit is X


def fullwidth(digits: str) -> str:
    """``digits`` as FULLWIDTH DIGIT characters (U+FF10..U+FF19): Unicode digits, not ASCII."""
    return "".join(chr(0xFF10 + int(c)) for c in digits)


def arabic_indic(digits: str) -> str:
    """``digits`` as ARABIC-INDIC DIGIT characters (U+0660..U+0669)."""
    return "".join(chr(0x0660 + int(c)) for c in digits)


FULLWIDTH_ID = "1" + fullwidth(DEMO_ID[1:17]) + "X"  # passes `\d`, not `[0-9]`


async def expect_error(
    resp: ClientResponse, status: int, code: str | None = None
) -> dict[str, Any]:
    """The response is ``status`` with a JSON ``{"error": {"code", "message", "details"?}}``."""
    text = await resp.text()
    assert resp.status == status, f"expected {status}, got {resp.status}: {text}"
    assert resp.content_type == "application/json", f"{resp.content_type}: {text}"
    assert resp.headers.get("X-Request-Id"), resp.headers
    body = await resp.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) <= {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    if code is not None:
        assert error["code"] == code, error
    return error


def paths_of(error: dict[str, Any]) -> list[str]:
    details = error.get("details")
    assert isinstance(details, list) and details, error
    for item in details:
        assert set(item) == {"path", "message"} and item["message"], item
    return [item["path"] for item in details]


JSON = {"Content-Type": "application/json"}


@dataclass
class Known:
    """A form saved before the bad request; ``assert_unchanged`` reads it back."""

    client: Client
    headers: Headers
    version: int
    choices: list[Any]
    url: str

    async def assert_unchanged(self) -> None:
        resp = await self.client.get(self.url, headers=self.headers)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert body["version"] == self.version, "a rejected request changed the stored form"
        assert body["choices"] == self.choices


async def save_known(
    client: Client, candidate_id: str = DEMO_ID, body: dict[str, Any] = KNOWN
) -> Known:
    headers = await login(client, candidate_id)
    url = form_url(candidate_id)
    resp = await client.put(url, json=body, headers=headers)
    assert resp.status == 200, await resp.text()
    version = (await resp.json())["version"]
    return Known(client, headers, version, body["choices"], url)


def json_headers(known: Known, **more: str) -> Headers:
    return {**known.headers, **JSON, **more}


@pytest.fixture
async def known(api: Client) -> AsyncIterator[Known]:
    """DEMO's form, saved before the test; after it, the stored version and choices must be
    the same (a test that saves on purpose updates ``version`` and ``choices``)."""
    saved = await save_known(api)
    yield saved
    await saved.assert_unchanged()


def _choice(institution: Any = "10001", majors: Any = None, **extra: Any) -> dict[str, Any]:
    return {"institution": institution, "majors": ["080901"] if majors is None else majors, **extra}


def _form(*items: dict[str, Any]) -> dict[str, Any]:
    return {"choices": list(items)}
