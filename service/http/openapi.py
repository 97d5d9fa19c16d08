"""The OpenAPI 3.1 document of the HTTP API, built from the code so the two cannot drift.

Request bodies are the pydantic models of ``schemas.http``; paths are the templates of
``schemas.urls``; path and header patterns are the ones the handlers check; error codes
come from the exception tree in ``service.core.errors``. ``python -m service.http.openapi``
rewrites ``schemas/openapi.json``; a test fails when the committed file differs from ``build()``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from schemas import urls
from schemas.http import (
    BatchBody,
    CandidateLogin,
    FormBody,
    InstitutionBody,
    StaffLogin,
    SubmitBody,
)
from schemas.responses import MODELS
from service.core.errors import TooManyRequests, Unavailable, VolregError
from service.filing.history import PAGE_MAX as HISTORY_PAGE_MAX
from service.hot.aggregate import WINDOW

# Every route's module defines the errors it raises; the app imports them all, so the
# document lists the same error codes however this module was imported.
from service.http import app as _app  # noqa: F401
from service.http import patterns
from service.schools.schools import FILINGS
from service.schools.schools import PAGE_MAX as SCHOOL_PAGE_MAX

# The document is a contract: it lives with the others in schemas/.
OUTPUT = Path(__file__).resolve().parents[2] / "schemas" / "openapi.json"

JSON = "application/json"
SCHEMAS = "#/components/schemas/"
RESPONSES = "#/components/responses/"

# Statuses the error middleware produces, and the name of their shared response.
ERROR_RESPONSES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    408: "RequestTimeout",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedEncoding",
    422: "ValidationFailed",
    429: "TooManyRequests",
    503: "Unavailable",
}

EXAMPLE_FORM: dict[str, Any] = {
    "choices": [
        {"institution": "10001", "majors": ["080901", "080902"], "accept_adjustment": True},
        {"institution": "10003", "majors": ["081001"], "accept_adjustment": False},
    ]
}
EXAMPLE_LOGIN = {"candidate_id": "11010519491231002X", "password": "demo-password"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": SCHEMAS + name}


def json_content(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {JSON: media}


def _errors_by_status() -> dict[int, list[type[VolregError]]]:
    """The error classes handlers raise, by HTTP status: all but the bases that group a
    status (``VolregError``, and ``Conflict`` or ``Unavailable`` with their subclasses), which
    are not raised themselves. 500s are not documented."""
    found: dict[int, list[type[VolregError]]] = {}
    pending: list[type[VolregError]] = [VolregError]
    while pending:
        cls = pending.pop()
        subclasses = cls.__subclasses__()
        pending.extend(subclasses)
        grouping = cls is VolregError or (VolregError in cls.__bases__ and bool(subclasses))
        if grouping or cls.status == 500:
            continue
        if cls.status not in ERROR_RESPONSES:
            raise ValueError(f"{cls.__name__}: add status {cls.status} to ERROR_RESPONSES")
        found.setdefault(cls.status, []).append(cls)
    return {status: sorted(classes, key=lambda c: c.code) for status, classes in found.items()}


def _error_response(status: int, classes: list[type[VolregError]]) -> dict[str, Any]:
    lines = [f"- `{c.code}`: {(c.__doc__ or '').strip()}" for c in classes]
    response: dict[str, Any] = {
        "description": "Error codes:\n" + "\n".join(lines),
        "headers": {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}},
        "content": json_content(ref("Error")),
    }
    if any(issubclass(c, Unavailable | TooManyRequests) for c in classes):
        response["headers"]["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
    return response


def _ok(description: str, content: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}},
        "content": content,
    }


def _operation(
    operation_id: str,
    summary: str,
    responses: dict[str, Any],
    errors: list[int],
    *,
    tag: str,
    auth: bool = False,
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "security": [{"bearer": []}] if auth else [],
        "responses": {
            **responses,
            **{str(s): {"$ref": RESPONSES + ERROR_RESPONSES[s]} for s in errors},
        },
    }
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
    return op


def _param(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def _components() -> dict[str, Any]:
    form_schema = FormBody.model_json_schema(ref_template=SCHEMAS + "{model}")
    schemas: dict[str, Any] = form_schema.pop("$defs")
    schemas["FormBody"] = form_schema
    schemas["CandidateLogin"] = CandidateLogin.model_json_schema(ref_template=SCHEMAS + "{model}")
    schemas.update(_staff_schemas())
    for model in MODELS:
        schema = model.model_json_schema(ref_template=SCHEMAS + "{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    by_status = _errors_by_status()
    return {
        "schemas": schemas,
        "responses": {
            name: _error_response(status, by_status[status])
            for status, name in ERROR_RESPONSES.items()
        },
        "parameters": {
            **_staff_parameters(),
            **_filing_parameters(),
            "CandidateId": {
                "name": "candidate_id",
                "in": "path",
                "required": True,
                "description": "Resident ID number (GB 11643) with a valid check digit; "
                "only the candidate's own token reaches it.",
                "schema": _text(patterns.CANDIDATE_ID),
            },
            "Batch": {
                "name": "batch",
                "in": "path",
                "required": True,
                "description": "Admission batch code.",
                "schema": _text(patterns.BATCH),
            },
            "IdempotencyKey": {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Repeating a save with the same key and body returns the first "
                "result without saving again; the same key with another body is a 422.",
                "schema": _text(patterns.IDEMPOTENCY_KEY),
            },
        },
        "headers": {
            "X-Request-Id": {
                "description": "The request's `X-Request-Id` if well formed, else a new one.",
                "schema": {"type": "string"},
            },
            "Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 0},
            },
        },
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": f"The token from `POST {urls.LOGIN}`.",
            }
        },
    }


def _paths() -> dict[str, Any]:
    form_params = [_param("CandidateId"), _param("Batch")]
    return {
        urls.LOGIN: {
            "post": _operation(
                "login",
                "Log in (candidate, teacher or admin) and get a bearer token",
                {"200": _ok("Logged in.", json_content(ref("LoginResult")))},
                [400, 401, 408, 413, 415, 422, 429, 503],
                tag="auth",
                body={
                    "required": True,
                    "content": json_content(
                        {"oneOf": [ref("CandidateLogin"), ref("StaffLogin")]}, EXAMPLE_LOGIN
                    ),
                },
            )
        },
        urls.LOGOUT: {
            "post": _operation(
                "logout",
                "Log out everywhere: every token of the account issued so far stops working",
                {
                    "200": _ok(
                        "Logged out.",
                        json_content(ref("LoggedOut"), {"status": "logged_out"}),
                    )
                },
                [401, 503],
                tag="auth",
                auth=True,
            )
        },
        urls.EXAM: {
            "get": _operation(
                "getExam",
                "The candidate's exam results",
                {"200": _ok("Exam results.", json_content(ref("Exam")))},
                [401, 403, 404, 422, 503],
                tag="candidates",
                auth=True,
                parameters=[_param("CandidateId")],
            )
        },
        urls.FORM: {
            "get": _operation(
                "getForm",
                "The candidate's latest saved form for a batch",
                {"200": _ok("The form.", json_content(ref("Form")))},
                [401, 403, 404, 422, 503],
                tag="forms",
                auth=True,
                parameters=form_params,
            ),
            "put": _operation(
                "putForm",
                "Save the whole form (all choices) for a batch; 422 also when two choices name "
                "the same institution or a choice names no institution or major of the catalogue",
                {"200": _ok("Saved: durable and visible to reads.", json_content(ref("Saved")))},
                [400, 401, 403, 404, 408, 409, 413, 415, 422, 429, 503],
                tag="forms",
                auth=True,
                parameters=[*form_params, _param("IdempotencyKey")],
                body={
                    "required": True,
                    "description": "JSON, optionally `Content-Encoding: gzip`; the size limit "
                    "applies to the decoded body.",
                    "content": json_content(ref("FormBody"), EXAMPLE_FORM),
                },
            ),
        },
        **_staff_paths(),
        **_filing_paths(),
        urls.LIVE: {
            "get": _operation(
                "live",
                "Liveness: the process serves requests",
                {"200": _ok("Alive.", json_content(ref("Health")))},
                [],
                tag="health",
            )
        },
        urls.READY: {
            "get": _operation(
                "ready",
                "Readiness: this process serves (started, connections established once or "
                "reconnecting, not shutting down); never a shared dependency's outage",
                {
                    "200": _ok("Ready.", json_content(ref("Readiness"))),
                    "503": _ok("Not ready.", json_content(ref("Readiness"))),
                },
                [],
                tag="health",
            )
        },
        urls.DEPS: {
            "get": _operation(
                "dependencies",
                "Dependencies: Redis, the broker and MySQL pinged now (not for load balancers)",
                {
                    "200": _ok("Every dependency answers.", json_content(ref("Readiness"))),
                    "503": _ok("A dependency is down.", json_content(ref("Readiness"))),
                },
                [],
                tag="health",
            )
        },
        urls.METRICS: {
            "get": _operation(
                "metrics",
                "Prometheus metrics (admins)",
                {
                    "200": _ok(
                        "Text exposition format.", {"text/plain": {"schema": {"type": "string"}}}
                    )
                },
                [401, 403],
                tag="health",
                auth=True,
            )
        },
        **_docs_paths(),
    }


def _docs_paths() -> dict[str, Any]:
    """This document over HTTP and the page that renders it."""

    def page(operation_id: str, summary: str, media: str) -> dict[str, Any]:
        content = {media: {"schema": {"type": "string"}}}
        return {
            "get": _operation(operation_id, summary, {"200": _ok(summary, content)}, [], tag="docs")
        }

    return {
        urls.OPENAPI: {
            "get": _operation(
                "openapi",
                "This OpenAPI document",
                {"200": _ok("The document.", {"application/json": {"schema": {"type": "object"}}})},
                [],
                tag="docs",
            )
        },
        urls.DOCS: page("docs", "The API documentation page (renders /openapi.json)", "text/html"),
        urls.DOCS_SCRIPT: page("docs_script", "The documentation page's script", "text/javascript"),
        urls.DOCS_STYLE: page("docs_style", "The documentation page's style sheet", "text/css"),
    }


def _staff_schemas() -> dict[str, Any]:
    """Bodies of the staff, catalogue and import endpoints."""
    out: dict[str, Any] = {
        "StaffLogin": StaffLogin.model_json_schema(ref_template=SCHEMAS + "{model}")
    }
    for model in (InstitutionBody, BatchBody, SubmitBody):
        schema = model.model_json_schema(ref_template=SCHEMAS + "{model}")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out


def _text(pattern: re.Pattern[str] | None = None) -> dict[str, Any]:
    """A string parameter's schema: the very pattern its handler checks."""
    return {"type": "string"} if pattern is None else {"type": "string", "pattern": pattern.pattern}


def _limit(maximum: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "maximum": maximum}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """An optional query parameter; the handlers read an empty one (``?name=``) as not given,
    so a pattern admits the empty string too."""
    schema = schema or _text()
    if "pattern" in schema:
        schema = {**schema, "pattern": patterns.optional(re.compile(schema["pattern"])).pattern}
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _path(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or _text(),
    }


def _staff_parameters() -> dict[str, Any]:
    return {
        "School": _path("school", "School code.", _text(patterns.SCHOOL)),
        "InstitutionCode": _path(
            "code", "Institution code (5 digits).", _text(patterns.INSTITUTION)
        ),
        "BatchCode": _path("batch", "Admission batch code.", _text(patterns.BATCH)),
        "Job": _path("job", "Import job id.", _text(patterns.JOB)),
        "FilingStatus": _query(
            "status",
            "`filed` or `unfiled` (in `batch`, or any batch).",
            {"type": "string", "enum": list(FILINGS)},
        ),
        "FilingBatch": _query("batch", "Batch the status filter looks at.", _text(patterns.BATCH)),
        "Cursor": _query(
            "cursor",
            "`next_cursor` of the previous page (the last candidate ID it listed).",
            _text(patterns.CANDIDATE_ID),
        ),
        "Limit": _query("limit", "Page size (default 50).", _limit(SCHOOL_PAGE_MAX)),
        "JobId": _query("job", "Job id to create or resume.", _text(patterns.JOB)),
        "FileName": _query("name", "File name shown in the job.", _text(patterns.FILE_NAME)),
        "Fresh": _query(
            "fresh",
            "`1`: do not resume an unfinished job over this content.",
            {"type": "string", "enum": ["", "0", "1"]},
        ),
        "After": _query("after", "Rejections after this line.", _text(patterns.LINE)),
    }


def _staff_paths() -> dict[str, Any]:
    code = _param("InstitutionCode")
    return {
        urls.SCHOOL_CANDIDATES: {
            "get": _operation(
                "schoolCandidates",
                "A page of the school's candidates with each one's filing status per batch "
                "(teachers of that school, admins)",
                {
                    "200": _ok(
                        "`{school, candidates, next_cursor}`.",
                        json_content(ref("SchoolCandidates")),
                    )
                },
                [401, 403, 422, 503],
                tag="schools",
                auth=True,
                parameters=[
                    _param(n) for n in ("School", "FilingStatus", "FilingBatch", "Cursor", "Limit")
                ],
            )
        },
        urls.CATALOGUE_INSTITUTIONS: {
            "get": _operation(
                "listInstitutions",
                "Every institution (code, name)",
                {"200": _ok("`{institutions}`.", json_content(ref("Institutions")))},
                [503],
                tag="catalogue",
            )
        },
        urls.CATALOGUE_INSTITUTION: {
            "get": _operation(
                "getInstitution",
                "An institution with its majors",
                {"200": _ok("`{code, name, majors}`.", json_content(ref("Institution")))},
                [404, 422, 503],
                tag="catalogue",
                parameters=[code],
            )
        },
        urls.CATALOGUE_BATCHES: {
            "get": _operation(
                "listBatches",
                "Admission batches with filing windows and control lines",
                {"200": _ok("`{batches}`.", json_content(ref("Batches")))},
                [503],
                tag="catalogue",
            )
        },
        urls.ADMIN_INSTITUTION: {
            "put": _operation(
                "putInstitution",
                "Publish an institution and its majors (replaces them; admins); 422 also when "
                "two majors have the same code",
                {
                    "200": _ok(
                        "Published: `{institution, redis_refreshed, broadcast}`.",
                        json_content(ref("InstitutionPublished")),
                    )
                },
                [400, 401, 403, 408, 413, 415, 422, 503],
                tag="admin",
                auth=True,
                parameters=[code],
                body={"required": True, "content": json_content(ref("InstitutionBody"))},
            )
        },
        urls.ADMIN_BATCH: {
            "put": _operation(
                "putBatch",
                "Publish a batch: filing window and control lines (admins); 422 also when the "
                "window closes before it opens or a category appears twice",
                {
                    "200": _ok(
                        "Published: `{batch, redis_refreshed, broadcast}`.",
                        json_content(ref("BatchPublished")),
                    )
                },
                [400, 401, 403, 408, 413, 415, 422, 503],
                tag="admin",
                auth=True,
                parameters=[_param("BatchCode")],
                body={"required": True, "content": json_content(ref("BatchBody"))},
            )
        },
        urls.ADMIN_IMPORTS: {
            "post": _operation(
                "importUpload",
                "Streamed bulk import of a candidates or teachers CSV, plain or gzip (admins); "
                "answers with the job's status when the whole body is imported; 422 when the "
                "CSV's header names neither file's columns",
                {"200": _ok("The finished job.", json_content(ref("ImportJob")))},
                [400, 401, 403, 409, 422, 503],
                tag="admin",
                auth=True,
                parameters=[_param(n) for n in ("JobId", "FileName", "Fresh")],
                body={
                    "required": True,
                    "content": {
                        "text/csv": {"schema": {"type": "string"}},
                        "application/gzip": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
            )
        },
        urls.ADMIN_IMPORT: {
            "get": _operation(
                "importStatus",
                "An import job: rows done, rejected, rate, ETA, rejections (admins)",
                {"200": _ok("The job.", json_content(ref("ImportJob")))},
                [401, 403, 404, 422, 503],
                tag="admin",
                auth=True,
                parameters=[_param("Job"), _param("After")],
            )
        },
    }


def _filing_parameters() -> dict[str, Any]:
    """Parameters of the hot-item, progress, history and submission endpoints."""
    batch = {
        "name": "batch",
        "in": "query",
        "required": True,
        "description": "Admission batch code.",
        "schema": _text(patterns.BATCH),
    }
    return {
        "HotBatch": batch,
        "HotWindow": _query(
            "window",
            "`5m` (default), `1-180m`, `1h`, `1-96h` (sliding) or `batch` (all of it).",
            _text(WINDOW),
        ),
        "TopLimit": _query("limit", "Entries per list (default 10).", _limit(100)),
        "ProgressBatch": batch,
        "HistoryCursor": _query(
            "cursor", "`next_cursor` of the previous page.", _text(patterns.HISTORY_CURSOR)
        ),
        "HistoryLimit": _query("limit", "Entries per page (default 20).", _limit(HISTORY_PAGE_MAX)),
        "ConsoleAsset": _path("asset", "A file of the console (`console.js`, `vendor/...`)."),
    }


def _filing_paths() -> dict[str, Any]:
    return {
        urls.ADMIN_HOT: {
            "get": _operation(
                "hotItems",
                "Most-chosen institutions and majors (first choice and any position) and the "
                "hottest read keys in a time window (admins)",
                {
                    "200": _ok(
                        "`{batch, window, institutions: {first_choice, any_position}, majors: "
                        "{first_choice, any_position}, read_keys}`; each a list of "
                        "`{item, count}`, hottest first. Majors are `institution/major`.",
                        json_content(ref("HotItems")),
                    )
                },
                [401, 403, 404, 422, 503],
                tag="admin",
                auth=True,
                parameters=[_param(n) for n in ("HotBatch", "HotWindow", "TopLimit")],
            )
        },
        urls.ADMIN_PIPELINE: {
            "get": _operation(
                "pipelineStatus",
                "Messages waiting in each form queue (the consumers' lag), dead letters, hot-item "
                "events waiting, and the last reconcile run (admins)",
                {
                    "200": _ok(
                        "`{queues, waiting, dead_letters, hot_events_waiting, last_reconcile, "
                        "errors}`; a part whose server is down is null, with the reason in "
                        "`errors`.",
                        json_content(ref("Pipeline")),
                    )
                },
                [401, 403],
                tag="admin",
                auth=True,
            )
        },
        urls.CONSOLE: {
            "get": _operation(
                "adminConsole",
                "The admin console, a page that logs in and reads the JSON APIs above",
                {"200": _ok("The page.", {"text/html": {"schema": {"type": "string"}}})},
                [],
                tag="admin",
            )
        },
        urls.CONSOLE_ASSET.replace(":.+", ""): {
            "get": _operation(
                "adminConsoleAsset",
                "A script, style sheet or vendored library of the console",
                {"200": _ok("The file.", {"*/*": {"schema": {"type": "string"}}})},
                [404],
                tag="admin",
                parameters=[_param("ConsoleAsset")],
            )
        },
        urls.FORM_SUBMIT: {
            "post": _operation(
                "submitForm",
                "Submit the version the candidate reviewed, through the save protocol (a new "
                "version with status `submitted`); 409 `stale_version` when the form changed "
                "since, `window_closed` outside the window; submitting the submitted version "
                "again changes nothing",
                {"200": _ok("`{version, updated_at, status}`.", json_content(ref("Submitted")))},
                [400, 401, 403, 404, 409, 413, 415, 422, 503],
                tag="forms",
                auth=True,
                parameters=[_param("CandidateId"), _param("Batch")],
                body={"required": True, "content": json_content(ref("SubmitBody"))},
            )
        },
        urls.FORM_HISTORY: {
            "get": _operation(
                "formHistory",
                "Every acknowledged save and submission of the form, newest first: version, "
                "time, choices, client address, request id, the token's subject and role (the "
                "candidate, teachers of their school, admins)",
                {
                    "200": _ok(
                        "`{candidate_id, batch, entries: [{version, saved_at, recorded_at, "
                        "status, choices, client, request_id, subject, role}], next_cursor}`.",
                        json_content(ref("History")),
                    )
                },
                [401, 403, 404, 422, 503],
                tag="forms",
                auth=True,
                parameters=[
                    _param("CandidateId"),
                    _param("Batch"),
                    _param("HistoryCursor"),
                    _param("HistoryLimit"),
                ],
            )
        },
        urls.ADMIN_PROGRESS: {
            "get": _operation(
                "filingProgress",
                "Candidates per filing status (none, saved, submitted) province-wide and per "
                "school, from counters kept as forms change (admins)",
                {
                    "200": _ok(
                        "`{batch, province: {candidates, none, saved, submitted}, schools: "
                        "[{school, candidates, none, saved, submitted}]}`.",
                        json_content(ref("ProvinceProgress")),
                    )
                },
                [401, 403, 404, 422, 503],
                tag="admin",
                auth=True,
                parameters=[_param("ProgressBatch")],
            )
        },
        urls.SCHOOL_PROGRESS: {
            "get": _operation(
                "schoolProgress",
                "Candidates of one school per filing status (teachers of that school, admins)",
                {
                    "200": _ok(
                        "`{batch, school, candidates, none, saved, submitted}`.",
                        json_content(ref("SchoolProgress")),
                    )
                },
                [401, 403, 404, 422, 503],
                tag="schools",
                auth=True,
                parameters=[_param("School"), _param("ProgressBatch")],
            )
        },
    }


def build() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "volreg",
            "version": urls.API.rsplit("/", 1)[-1],
            "description": "Saving college-application forms. Errors are "
            '`{"error": {"code", "message", "details"?}}`.',
        },
        "tags": [
            {"name": n}
            for n in (
                "auth",
                "candidates",
                "forms",
                "schools",
                "catalogue",
                "admin",
                "health",
                "docs",
            )
        ],
        "paths": _paths(),
        "components": _components(),
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    # Every route module, so that every error class they raise is a known subclass.
    import service.http.app  # noqa: F401

    OUTPUT.write_text(render(build()), encoding="utf-8")
    print(f"wrote schemas/{OUTPUT.name}")


if __name__ == "__main__":
    main()
