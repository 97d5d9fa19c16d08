"""Bad paths, closed or unknown batches and unrouted requests get a clear JSON error with the
right status, never a 500, and change nothing."""

from __future__ import annotations

import pytest

from schemas import urls
from tests.bad_input import (
    BAD_CHECK_ID,
    FULLWIDTH_ID,
    KNOWN,
    Known,
    expect_error,
    paths_of,
)
from tests.support import (
    CLOSED_BATCH,
    DEMO_ID,
    OPEN_BATCH,
    form_url,
)

# ---------------------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("candidate_id", "batch", "path"),
    [
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


@pytest.mark.parametrize("candidate_id", ["123", FULLWIDTH_ID], ids=["short", "fullwidth"])
async def test_bad_exam_path_is_422(known: Known, candidate_id: str) -> None:
    url = urls.EXAM.format(candidate_id=candidate_id)
    resp = await known.client.get(url, headers=known.headers)
    error = await expect_error(resp, 422, "validation_failed")
    assert paths_of(error) == ["path.candidate_id"], error


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", form_url(BAD_CHECK_ID, OPEN_BATCH)),
        ("PUT", form_url(BAD_CHECK_ID, OPEN_BATCH)),
        ("GET", urls.EXAM.format(candidate_id=BAD_CHECK_ID)),
    ],
)
async def test_an_id_shaped_path_with_a_wrong_check_digit_is_404(
    known: Known, method: str, url: str
) -> None:
    """Shaped like an ID (the document's pattern allows it), but no candidate can have it:
    there is no such resource, rather than a malformed request."""
    resp = await known.client.request(method, url, json=KNOWN, headers=known.headers)
    error = await expect_error(resp, 404, "not_found")
    assert "check digit" in error["message"]


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
