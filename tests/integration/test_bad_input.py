"""Bad input gets a clear JSON error with the right status, never a 500, and changes nothing."""

from __future__ import annotations

import gzip
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from schemas import urls
from service.core.ids import make_id
from service.core.ports import Batch
from service.core.settings import Settings
from service.core.tokens import Claims, TokenSigner
from service.storage.mysql_db import MySQLDatabase
from tests.conftest import ClientFactory
from tests.support import (
    CLOSED_BATCH,
    DEMO_ID,
    OPEN_BATCH,
    OTHER_ID,
    PASSWORD,
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


# ---------------------------------------------------------------------------------- JSON syntax


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"choices": [{"institution": "10001", "majors": ["0809', id="truncated"),
        pytest.param(b"choices=10001", id="not-json"),
        pytest.param(b"", id="empty"),
        pytest.param(b"  \r\n\t ", id="whitespace-only"),
        pytest.param(b"{'choices': []}", id="single-quotes"),
        pytest.param(b'{"choices": [],}', id="trailing-comma"),
        pytest.param(b'{"choices": NaN}', id="nan"),
        pytest.param(b'{"choices": []} {}', id="two-documents"),
        pytest.param(b'{"choices": ["\xff\xfe"]}', id="invalid-utf8"),
        pytest.param(b"[" * 5000 + b"]" * 5000, id="too-deep"),
    ],
)
async def test_malformed_json_is_400(known: Known, raw: bytes) -> None:
    resp = await known.client.put(known.url, data=raw, headers=json_headers(known))
    await expect_error(resp, 400, "bad_request")


# ------------------------------------------------------------------------------ schema violations


@pytest.mark.parametrize(
    ("body", "path"),
    [
        # types
        pytest.param(_form(_choice(institution=10001)), "choices[0].institution", id="inst-int"),
        pytest.param(_form(_choice(institution=None)), "choices[0].institution", id="inst-null"),
        pytest.param(_form(_choice(majors="080901")), "choices[0].majors", id="majors-str"),
        pytest.param(_form(_choice(majors=[80901])), "choices[0].majors[0]", id="major-int"),
        pytest.param(
            _form(_choice(accept_adjustment="yes")),
            "choices[0].accept_adjustment",
            id="adjust-str",
        ),
        pytest.param(
            _form(_choice(accept_adjustment=1)), "choices[0].accept_adjustment", id="adjust-int"
        ),
        pytest.param({"choices": {"0": _choice()}}, "choices", id="choices-object"),
        pytest.param({"choices": None}, "choices", id="choices-null"),
        pytest.param({"choices": "10001"}, "choices", id="choices-str"),
        pytest.param({"choices": ["10001"]}, "choices[0]", id="choice-str"),
        pytest.param({}, "choices", id="choices-missing"),
        pytest.param(_form({"majors": ["080901"]}), "choices[0].institution", id="inst-missing"),
        pytest.param(_form({"institution": "10001"}), "choices[0].majors", id="majors-missing"),
        # sizes
        pytest.param(_form(), "choices", id="0-choices"),
        pytest.param({"choices": choices(97)}, "choices", id="97-choices"),
        pytest.param(_form(_choice(majors=[])), "choices[0].majors", id="0-majors"),
        pytest.param(
            _form(_choice(majors=[f"{80901 + i:06d}" for i in range(7)])),
            "choices[0].majors",
            id="7-majors",
        ),
        # codes
        pytest.param(_form(_choice(institution="1000")), "choices[0].institution", id="inst-4"),
        pytest.param(_form(_choice(institution="100011")), "choices[0].institution", id="inst-6"),
        pytest.param(_form(_choice(institution="1000a")), "choices[0].institution", id="inst-hex"),
        pytest.param(
            _form(_choice(institution="10001\n")), "choices[0].institution", id="inst-newline"
        ),
        pytest.param(
            _form(_choice(institution=fullwidth("10001"))),
            "choices[0].institution",
            id="inst-fullwidth-digits",
        ),
        pytest.param(
            _form(_choice(), _choice("10002", ["08090"])), "choices[1].majors[0]", id="major-5"
        ),
        pytest.param(
            _form(_choice(), _choice("10002", ["080901a"])),
            "choices[1].majors[0]",
            id="major-lowercase-suffix",
        ),
        pytest.param(
            _form(_choice(), _choice("10002", [arabic_indic("080901")])),
            "choices[1].majors[0]",
            id="major-arabic-indic-digits",
        ),
        # rules across choices
        pytest.param(_form(_choice(), _choice()), "choices[1].institution", id="dup-institution"),
        pytest.param(
            _form(_choice(majors=["080901", "080902", "080901"])),
            "choices[0].majors",
            id="dup-major",
        ),
        # not an object at the top level
        pytest.param([_choice()], "$", id="top-array"),
        pytest.param("choices", "$", id="top-string"),
        pytest.param(42, "$", id="top-number"),
        pytest.param(None, "$", id="top-null"),
        pytest.param(True, "$", id="top-bool"),
        # unknown fields
        pytest.param({**_form(_choice()), "status": "final"}, "status", id="unknown-top"),
        pytest.param(_form(_choice(rank=1)), "choices[0].rank", id="unknown-in-choice"),
    ],
)
async def test_schema_violation_is_422_with_field_path(known: Known, body: Any, path: str) -> None:
    resp = await known.client.put(known.url, data=orjson.dumps(body), headers=json_headers(known))
    error = await expect_error(resp, 422, "validation_failed")
    assert path in paths_of(error), error


# ------------------------------------------------------------------------------------ body size


async def _chunks(data: bytes, size: int = 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


LIMIT = 4096


@pytest.fixture
async def small_limit(make_client: ClientFactory, consumer: None) -> AsyncIterator[Known]:
    """An API whose body limit is 4 KiB, with a known form saved."""
    saved = await save_known(await make_client(max_body_bytes=LIMIT))
    yield saved
    await saved.assert_unchanged()


async def test_body_over_limit_is_413(small_limit: Known) -> None:
    big = {"choices": choices(96)}  # valid, but about 8 KiB
    k = small_limit
    resp = await k.client.put(k.url, json=big, headers=k.headers)
    await expect_error(resp, 413, "payload_too_large")


@pytest.mark.parametrize(("extra", "status"), [(0, 200), (1, 413)], ids=["at-limit", "one-over"])
async def test_limit_is_inclusive(small_limit: Known, extra: int, status: int) -> None:
    k = small_limit
    body = orjson.dumps({"choices": choices(2, 6)})
    data = body + b" " * (LIMIT - len(body) + extra)
    resp = await k.client.put(k.url, data=data, headers=json_headers(k))
    if status == 200:
        assert resp.status == 200, await resp.text()
        k.version = (await resp.json())["version"]
        k.choices = choices(2, 6)
    else:
        await expect_error(resp, 413, "payload_too_large")


async def test_body_over_default_limit_is_413(known: Known, settings: Settings) -> None:
    data = b'{"choices": [' + b" " * settings.max_body_bytes + b"]}"
    resp = await known.client.put(known.url, data=data, headers=json_headers(known))
    await expect_error(resp, 413, "payload_too_large")


async def test_chunked_body_over_limit_is_413(small_limit: Known) -> None:
    k = small_limit
    data = b'{"choices": [' + b" " * 4 * LIMIT + b"]}"
    resp = await k.client.put(k.url, data=_chunks(data), headers=k.headers)
    await expect_error(resp, 413, "payload_too_large")


async def test_gzip_bomb_is_413(small_limit: Known) -> None:
    k = small_limit
    bomb = gzip.compress(b'{"choices": [' + b" " * 2_000_000 + b"]}")
    assert len(bomb) < LIMIT
    headers = {**k.headers, **JSON, "Content-Encoding": "gzip"}
    resp = await k.client.put(k.url, data=bomb, headers=headers)
    await expect_error(resp, 413, "payload_too_large")


async def test_login_body_over_limit_is_413(small_limit: Known) -> None:
    resp = await small_limit.client.post(
        urls.LOGIN, json={"candidate_id": DEMO_ID, "password": "x" * 2 * LIMIT}
    )
    await expect_error(resp, 413, "payload_too_large")


VALID = orjson.dumps({"choices": choices(1, 2)})


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        pytest.param("gzip", VALID, id="gzip-not-compressed"),
        pytest.param("gzip", gzip.compress(VALID)[: len(VALID) // 2], id="gzip-cut"),
        pytest.param("deflate", b"\x78\x9c not deflate", id="deflate-garbage"),
    ],
)
async def test_undecodable_body_is_400(known: Known, encoding: str, data: bytes) -> None:
    resp = await known.client.put(
        known.url, data=data, headers=json_headers(known, **{"Content-Encoding": encoding})
    )
    await expect_error(resp, 400, "bad_request")


async def test_unknown_content_encoding_is_415(known: Known) -> None:
    """aiohttp passes a body with a coding it does not know through as it is; the service must
    not read it as plain JSON (RFC 9110, 15.5.16)."""
    resp = await known.client.put(
        known.url, data=VALID, headers=json_headers(known, **{"Content-Encoding": "x-unknown"})
    )
    await expect_error(resp, 415)


@pytest.mark.parametrize("encoding", ["br", "zstd"])
async def test_coding_without_decoder_is_400(known: Known, encoding: str) -> None:
    """aiohttp itself refuses these (no Brotli / zstd module) before the app runs, so the
    answer is its plain-text 400, not the JSON error shape; it must not be a 5xx."""
    resp = await known.client.put(
        known.url, data=VALID, headers=json_headers(known, **{"Content-Encoding": encoding})
    )
    assert resp.status == 400, await resp.text()


async def test_small_gzip_body_is_accepted(api: Client) -> None:
    headers = await login(api)
    body = {"choices": choices(5, 11)}
    data = gzip.compress(orjson.dumps(body))
    resp = await api.put(
        form_url(),
        data=data,
        headers={**headers, **JSON, "Content-Encoding": "gzip"},
    )
    assert resp.status == 200, await resp.text()
    version = (await resp.json())["version"]
    read = await (await api.get(form_url(), headers=headers)).json()
    assert read["version"] == version and read["choices"] == body["choices"]


# ---------------------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("candidate_id", "batch", "path"),
    [
        pytest.param(BAD_CHECK_ID, OPEN_BATCH, "path.candidate_id", id="id-check-digit"),
        pytest.param("123", OPEN_BATCH, "path.candidate_id", id="id-short"),
        pytest.param(DEMO_ID[:17], OPEN_BATCH, "path.candidate_id", id="id-17-digits"),
        pytest.param(DEMO_ID + "0", OPEN_BATCH, "path.candidate_id", id="id-19"),
        pytest.param(DEMO_ID[:17] + "x", OPEN_BATCH, "path.candidate_id", id="id-lowercase-x"),
        pytest.param("0" + DEMO_ID[1:], OPEN_BATCH, "path.candidate_id", id="id-leading-0"),
        pytest.param(FULLWIDTH_ID, OPEN_BATCH, "path.candidate_id", id="id-fullwidth"),
        pytest.param(DEMO_ID + "%0A", OPEN_BATCH, "path.candidate_id", id="id-newline"),
        pytest.param(DEMO_ID, "Undergrad-1", "path.batch", id="batch-upper"),
        pytest.param(DEMO_ID, "undergrad_1", "path.batch", id="batch-underscore"),
        pytest.param(DEMO_ID, "-undergrad", "path.batch", id="batch-leading-dash"),
        pytest.param(DEMO_ID, "a" * 33, "path.batch", id="batch-33"),
        pytest.param(DEMO_ID, "undergrad-1%20", "path.batch", id="batch-space"),
        pytest.param(DEMO_ID, "undergrad-1%0A", "path.batch", id="batch-newline"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "PUT"])
async def test_bad_path_is_422(
    known: Known, method: str, candidate_id: str, batch: str, path: str
) -> None:
    url = form_url(candidate_id, batch)
    resp = await known.client.request(method, url, json=KNOWN, headers=known.headers)
    error = await expect_error(resp, 422, "validation_failed")
    assert paths_of(error) == [path], error


@pytest.mark.parametrize(
    "candidate_id", [BAD_CHECK_ID, "123", FULLWIDTH_ID], ids=["check-digit", "short", "fullwidth"]
)
async def test_bad_exam_path_is_422(known: Known, candidate_id: str) -> None:
    url = urls.EXAM.format(candidate_id=candidate_id)
    resp = await known.client.get(url, headers=known.headers)
    error = await expect_error(resp, 422, "validation_failed")
    assert paths_of(error) == ["path.candidate_id"], error


# ------------------------------------------------------------------------------ authentication


@pytest.mark.parametrize("method", ["GET", "PUT"])
async def test_other_candidates_form_is_403(api: Client, method: str) -> None:
    other = await save_known(api, OTHER_ID, {"choices": choices(2, 5)})
    demo_headers = await login(api, DEMO_ID)
    resp = await api.request(method, other.url, json=KNOWN, headers=demo_headers)
    await expect_error(resp, 403, "forbidden")
    await other.assert_unchanged()


async def test_other_candidates_exam_is_403(api: Client) -> None:
    headers = await login(api, OTHER_ID)
    resp = await api.get(urls.EXAM.format(candidate_id=DEMO_ID), headers=headers)
    await expect_error(resp, 403, "forbidden")


async def test_token_of_another_role_is_403(known: Known, settings: Settings) -> None:
    token = TokenSigner(settings.token_secret).issue(Claims(DEMO_ID, "admin", _later()))
    resp = await known.client.put(
        known.url, json=KNOWN, headers={"Authorization": f"Bearer {token}"}
    )
    await expect_error(resp, 403, "forbidden")


def _later() -> int:
    return int(time.time()) + 3600


def _auth_header(kind: str, secret: str, valid: str) -> dict[str, str]:
    """``Authorization`` headers that must all be refused with 401."""
    expired = TokenSigner(secret).issue(Claims(DEMO_ID, "candidate", int(time.time()) - 5))
    forged = TokenSigner("not-the-secret").issue(Claims(DEMO_ID, "candidate", _later()))
    body, _, signature = valid.partition(".")
    other_body = TokenSigner(secret).issue(Claims(OTHER_ID, "candidate", _later())).split(".")[0]
    values = {
        "none": None,
        "empty": "",
        "bearer-only": "Bearer",
        "bearer-blank": "Bearer    ",
        "garbage": "Bearer garbage",
        "garbage-dot": "Bearer a.b",
        "dots": "Bearer ...",
        "no-signature": f"Bearer {body}.",
        "no-body": f"Bearer .{signature}",
        "expired": f"Bearer {expired}",
        "forged": f"Bearer {forged}",
        "swapped-claims": f"Bearer {other_body}.{signature}",
        "signed-garbage-claims": "Bearer " + _signed(secret, "bm90LWpzb24"),
        "non-ascii": "Bearer abc.\u00e9\u00e9",
        "basic-scheme": "Basic ZGVtbzpkZW1vLXBhc3N3b3Jk",
        "token-scheme": f"Token {valid}",
        "no-scheme": valid,
    }
    value = values[kind]
    return {} if value is None else {"Authorization": value}


def _signed(secret: str, body: str) -> str:
    """A correctly signed token whose body is not valid claims."""
    signer = TokenSigner(secret)
    return f"{body}.{signer._sign(body)}"


AUTH_KINDS = [
    "none",
    "empty",
    "bearer-only",
    "bearer-blank",
    "garbage",
    "garbage-dot",
    "dots",
    "no-signature",
    "no-body",
    "expired",
    "forged",
    "swapped-claims",
    "signed-garbage-claims",
    "non-ascii",
    "basic-scheme",
    "token-scheme",
    "no-scheme",
]


@pytest.mark.parametrize("kind", AUTH_KINDS)
@pytest.mark.parametrize("method", ["GET", "PUT"])
async def test_bad_credentials_are_401(
    known: Known, settings: Settings, method: str, kind: str
) -> None:
    valid = known.headers["Authorization"].partition(" ")[2]
    headers = _auth_header(kind, settings.token_secret, valid)
    resp = await known.client.request(method, known.url, json=KNOWN, headers=headers)
    await expect_error(resp, 401, "unauthorized")


@pytest.mark.parametrize("kind", ["none", "garbage", "expired", "forged", "basic-scheme"])
async def test_exam_needs_valid_credentials(known: Known, settings: Settings, kind: str) -> None:
    valid = known.headers["Authorization"].partition(" ")[2]
    headers = _auth_header(kind, settings.token_secret, valid)
    resp = await known.client.get(urls.EXAM.format(candidate_id=DEMO_ID), headers=headers)
    await expect_error(resp, 401, "unauthorized")


# ---------------------------------------------------------------------------------------- login


@pytest.mark.parametrize(
    ("body", "status", "path"),
    [
        pytest.param({"candidate_id": DEMO_ID, "password": "wrong"}, 401, None, id="wrong-pw"),
        pytest.param(
            {"candidate_id": DEMO_ID, "password": PASSWORD.upper()}, 401, None, id="pw-case"
        ),
        pytest.param({"candidate_id": UNKNOWN_ID, "password": PASSWORD}, 401, None, id="unknown"),
        pytest.param(
            {"candidate_id": BAD_CHECK_ID, "password": PASSWORD},
            422,
            "candidate_id",
            id="check-digit",
        ),
        pytest.param(
            {"candidate_id": DEMO_ID[:17] + "x", "password": PASSWORD},
            422,
            "candidate_id",
            id="lowercase-x",
        ),
        pytest.param(
            {"candidate_id": DEMO_ID + "\n", "password": PASSWORD},
            422,
            "candidate_id",
            id="trailing-newline",
        ),
        pytest.param(
            {"candidate_id": FULLWIDTH_ID, "password": PASSWORD},
            422,
            "candidate_id",
            id="fullwidth-digits",
        ),
        pytest.param({"candidate_id": DEMO_ID}, 422, "password", id="no-password"),
        pytest.param({"password": PASSWORD}, 422, "candidate_id", id="no-candidate-id"),
        pytest.param({"candidate_id": DEMO_ID, "password": ""}, 422, "password", id="empty-pw"),
        pytest.param(
            {"candidate_id": DEMO_ID, "password": "x" * 257}, 422, "password", id="long-pw"
        ),
        pytest.param(
            {"candidate_id": 110105194912310020, "password": PASSWORD},
            422,
            "candidate_id",
            id="id-number",
        ),
        pytest.param(
            {"candidate_id": DEMO_ID, "password": PASSWORD, "role": "admin"},
            422,
            "role",
            id="unknown-field",
        ),
        pytest.param([DEMO_ID, PASSWORD], 422, "$", id="array"),
        pytest.param(None, 422, "$", id="null"),
    ],
)
async def test_bad_login(api: Client, body: Any, status: int, path: str | None) -> None:
    resp = await api.post(urls.LOGIN, data=orjson.dumps(body), headers=JSON)
    error = await expect_error(resp, status)
    if path is not None:
        assert path in paths_of(error), error
    else:
        assert error["code"] == "unauthorized"


@pytest.mark.parametrize(
    "raw",
    [b'{"candidate_id": "1101', b"candidate_id=1&password=2", b""],
    ids=["truncated", "form-encoded", "empty"],
)
async def test_login_malformed_json_is_400(api: Client, raw: bytes) -> None:
    resp = await api.post(urls.LOGIN, data=raw, headers={"Content-Type": "application/json"})
    await expect_error(resp, 400, "bad_request")


async def test_wrong_password_and_unknown_candidate_look_the_same(api: Client) -> None:
    wrong = await expect_error(
        await api.post(urls.LOGIN, json={"candidate_id": DEMO_ID, "password": "nope"}), 401
    )
    unknown = await expect_error(
        await api.post(urls.LOGIN, json={"candidate_id": UNKNOWN_ID, "password": "nope"}), 401
    )
    assert wrong == unknown


# ----------------------------------------------------------------------------------- batches


async def test_closed_window_is_409(known: Known) -> None:
    url = form_url(DEMO_ID, CLOSED_BATCH)
    resp = await known.client.put(url, json=KNOWN, headers=known.headers)
    await expect_error(resp, 409, "window_closed")
    resp = await known.client.get(url, headers=known.headers)
    await expect_error(resp, 404, "not_found")


async def test_unknown_batch_is_404(known: Known) -> None:
    url = form_url(DEMO_ID, "no-such-batch")
    resp = await known.client.put(url, json=KNOWN, headers=known.headers)
    await expect_error(resp, 404, "not_found")
    resp = await known.client.get(url, headers=known.headers)
    await expect_error(resp, 404, "not_found")


# ----------------------------------------------------------------------------- routing errors


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", form_url(), {"GET", "PUT"}),
        ("POST", form_url(), {"GET", "PUT"}),
        ("PATCH", form_url(), {"GET", "PUT"}),
        ("GET", urls.LOGIN, {"POST"}),
        ("PUT", urls.LOGIN, {"POST"}),
        ("POST", urls.EXAM.format(candidate_id=DEMO_ID), {"GET"}),
        ("PUT", urls.LIVE, {"GET"}),
        ("POST", urls.READY, {"GET"}),
        ("DELETE", urls.METRICS, {"GET"}),
    ],
)
async def test_wrong_method_is_405_json(
    known: Known, method: str, path: str, allow: set[str]
) -> None:
    resp = await known.client.request(method, path, json=KNOWN, headers=known.headers)
    await expect_error(resp, 405, "method_not_allowed")
    assert allow <= set(resp.headers["Allow"].replace(" ", "").split(",")), resp.headers


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/nope",
        "/api/v1",
        "/api/v1/candidates",
        f"/api/v1/candidates/{DEMO_ID}",
        f"/api/v1/candidates/{DEMO_ID}/forms",
        form_url() + "/extra",
        "/api/v2/auth/login",
        "/health",
    ],
)
@pytest.mark.parametrize("method", ["GET", "PUT"])
async def test_unknown_path_is_404_json(known: Known, method: str, path: str) -> None:
    resp = await known.client.request(method, path, json=KNOWN, headers=known.headers)
    await expect_error(resp, 404, "not_found")


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
