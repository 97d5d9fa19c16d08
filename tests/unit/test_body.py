"""Bad bodies get a clear JSON error with the right status, never a 500, and change nothing:
JSON syntax, schema violations, size limits, content encodings."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from schemas import urls
from service.core.settings import Settings
from tests.bad_input import (
    JSON,
    Client,
    Known,
    _choice,
    _form,
    arabic_indic,
    expect_error,
    fullwidth,
    json_headers,
    paths_of,
    save_known,
)
from tests.conftest import ClientFactory
from tests.support import (
    DEMO_ID,
    choices,
    form_url,
    login,
)

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
async def small_limit(make_client: ClientFactory) -> AsyncIterator[Known]:
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


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br", "aes128gcm"])
async def test_every_unsupported_coding_is_json_415(known: Known, encoding: str) -> None:
    """aiohttp's own decompression is off, so codings it has no decoder for (br, zstd) no
    longer get its plain-text 400 before the app runs: the documented JSON 415."""
    resp = await known.client.put(
        known.url, data=VALID, headers=json_headers(known, **{"Content-Encoding": encoding})
    )
    await expect_error(resp, 415, "unsupported_encoding")


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
