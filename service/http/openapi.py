"""The OpenAPI 3.1 document of the HTTP API, built from the code so the two cannot drift.

Request bodies are the pydantic models of ``schemas.http``; paths are the templates of
``schemas.urls``; path and header patterns are the ones the handlers check; error codes
come from the exception tree in ``service.core.errors``. ``python -m service.http.openapi``
rewrites ``schemas/openapi.json``; a test fails when the committed file differs from ``build()``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas import urls
from schemas.http import BatchBody, CandidateLogin, FormBody, InstitutionBody, StaffLogin
from service.accounts.login import ROLE_ADMIN, ROLE_CANDIDATE, ROLE_TEACHER
from service.core import ids
from service.core.errors import TooManyRequests, Unavailable, VolregError

# Every route's module defines the errors it raises; the app imports them all, so the
# document lists the same error codes however this module was imported.
from service.http import app as _app  # noqa: F401
from service.http import patterns

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
    timestamp = {"type": "string", "format": "date-time"}
    schemas.update(
        {
            "LoginResult": {
                "type": "object",
                "required": ["token", "expires_at", "role"],
                "properties": {
                    "token": {"type": "string", "description": "Send as `Bearer <token>`."},
                    "expires_at": timestamp,
                    "role": {
                        "type": "string",
                        "enum": [ROLE_CANDIDATE, ROLE_TEACHER, ROLE_ADMIN],
                    },
                },
            },
            "Form": {
                "type": "object",
                "required": ["choices", "version", "updated_at", "status"],
                "properties": {
                    "choices": {"type": "array", "items": ref("Choice")},
                    "version": {"type": "integer", "description": "Grows with every save."},
                    "updated_at": timestamp,
                    "status": {"type": "string"},
                },
            },
            "Saved": {
                "type": "object",
                "required": ["version", "updated_at"],
                "properties": {"version": {"type": "integer"}, "updated_at": timestamp},
            },
            "Exam": {
                "type": "object",
                "required": ["total_score", "rank", "subjects"],
                "properties": {
                    "total_score": {"type": "number"},
                    "rank": {"type": "integer", "minimum": 1},
                    "subjects": {
                        "type": "object",
                        "additionalProperties": {"type": "number"},
                        "description": "Score per subject.",
                    },
                },
            },
            "Health": {
                "type": "object",
                "required": ["status"],
                "properties": {"status": {"type": "string", "enum": ["ok"]}},
            },
            "Readiness": {
                "type": "object",
                "required": ["status", "checks"],
                "properties": {
                    "status": {"type": "string", "enum": ["ok", "unavailable"]},
                    "checks": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": "/health/deps: per dependency `ok` or `down: <reason>`; "
                        "/health/ready: `process` (`serving`, `draining`) and per connection "
                        "`established`, `connecting`, `reconnecting` or `failed: <reason>`.",
                    },
                },
            },
            "FieldProblem": {
                "type": "object",
                "required": ["path", "message"],
                "properties": {
                    "path": {
                        "type": "string",
                        "description": "Like `choices[1].majors[0]`, `path.batch`, "
                        "`header.Idempotency-Key`, or `$` for the whole body.",
                    },
                    "message": {"type": "string"},
                },
            },
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "details": {
                                "description": "For `validation_failed`: the fields at fault.",
                                "anyOf": [
                                    {"type": "array", "items": ref("FieldProblem")},
                                    {"type": "object"},
                                ],
                            },
                        },
                    }
                },
            },
        }
    )
    by_status = _errors_by_status()
    return {
        "schemas": schemas,
        "responses": {
            name: _error_response(status, by_status[status])
            for status, name in ERROR_RESPONSES.items()
        },
        "parameters": {
            **_staff_parameters(),
            "CandidateId": {
                "name": "candidate_id",
                "in": "path",
                "required": True,
                "description": "Resident ID number (GB 11643) with a valid check digit; "
                "only the candidate's own token reaches it.",
                "schema": {"type": "string", "pattern": ids.ID_SHAPE.pattern},
            },
            "Batch": {
                "name": "batch",
                "in": "path",
                "required": True,
                "description": "Admission batch code.",
                "schema": {"type": "string", "pattern": patterns.BATCH.pattern},
            },
            "IdempotencyKey": {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Repeating a save with the same key and body returns the first "
                "result without saving again; the same key with another body is a 422.",
                "schema": {"type": "string", "pattern": patterns.IDEMPOTENCY_KEY.pattern},
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
                        json_content(
                            {"type": "object", "properties": {"status": {"type": "string"}}},
                            {"status": "logged_out"},
                        ),
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
                "Save the whole form (all choices) for a batch",
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
    for model in (InstitutionBody, BatchBody):
        schema = model.model_json_schema(ref_template=SCHEMAS + "{model}")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    out["Object"] = {"type": "object", "description": "See the endpoint's summary."}
    return out


def _query(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _staff_parameters() -> dict[str, Any]:
    return {
        "School": _path("school", "School code."),
        "InstitutionCode": _path("code", "Institution code (5 digits)."),
        "BatchCode": _path("batch", "Admission batch code."),
        "Job": _path("job", "Import job id."),
        "FilingStatus": _query("status", "`filed` or `unfiled` (in `batch`, or any batch)."),
        "FilingBatch": _query("batch", "Batch the status filter looks at."),
        "Cursor": _query("cursor", "`next_cursor` of the previous page."),
        "Limit": _query("limit", "Page size, 1-200 (default 50)."),
        "JobId": _query("job", "Job id to create or resume."),
        "FileName": _query("name", "File name shown in the job."),
        "Fresh": _query("fresh", "`1`: do not resume an unfinished job over this content."),
        "After": _query("after", "Rejections after this line."),
    }


def _staff_paths() -> dict[str, Any]:
    obj = json_content(ref("Object"))
    code = _param("InstitutionCode")
    return {
        urls.SCHOOL_CANDIDATES: {
            "get": _operation(
                "schoolCandidates",
                "A page of the school's candidates with each one's filing status per batch "
                "(teachers of that school, admins)",
                {"200": _ok("`{school, candidates, next_cursor}`.", obj)},
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
                {"200": _ok("`{institutions}`.", obj)},
                [503],
                tag="catalogue",
            )
        },
        urls.CATALOGUE_INSTITUTION: {
            "get": _operation(
                "getInstitution",
                "An institution with its majors",
                {"200": _ok("`{code, name, majors}`.", obj)},
                [404, 422, 503],
                tag="catalogue",
                parameters=[code],
            )
        },
        urls.CATALOGUE_BATCHES: {
            "get": _operation(
                "listBatches",
                "Admission batches with filing windows and control lines",
                {"200": _ok("`{batches}`.", obj)},
                [503],
                tag="catalogue",
            )
        },
        urls.ADMIN_INSTITUTION: {
            "put": _operation(
                "putInstitution",
                "Publish an institution and its majors (replaces them; admins)",
                {"200": _ok("Published: `{institution, redis_refreshed, broadcast}`.", obj)},
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
                "Publish a batch: filing window and control lines (admins)",
                {"200": _ok("Published: `{batch, redis_refreshed, broadcast}`.", obj)},
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
                "answers with the job's status when the whole body is imported",
                {"200": _ok("The finished job.", obj)},
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
                {"200": _ok("The job.", obj)},
                [401, 403, 404, 422, 503],
                tag="admin",
                auth=True,
                parameters=[_param("Job"), _param("After")],
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
