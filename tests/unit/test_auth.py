"""Missing, bad or foreign credentials and bad logins get a clear JSON error with the right
status, never a 500, and change nothing."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from schemas import urls
from service.core.settings import Settings
from service.core.tokens import Claims, TokenSigner
from tests.bad_input import (
    BAD_CHECK_ID,
    FULLWIDTH_ID,
    JSON,
    KNOWN,
    UNKNOWN_ID,
    Client,
    Known,
    expect_error,
    paths_of,
    save_known,
)
from tests.support import (
    DEMO_ID,
    OTHER_ID,
    PASSWORD,
    choices,
    login,
)

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
        # Shaped like an ID, so the body is well formed: the credentials are what is wrong.
        pytest.param(
            {"candidate_id": BAD_CHECK_ID, "password": PASSWORD}, 401, None, id="check-digit"
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
