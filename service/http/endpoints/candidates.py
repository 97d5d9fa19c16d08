"""HTTP handlers: parse the request, call a use case, serialize the result."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from schemas import urls
from schemas.http import (
    CandidateLogin,
    FormBody,
    Problem,
    parse_form,
    parse_form_json,
    parse_login,
)
from schemas.records import FormKey, Origin
from service.accounts.login import ROLE_ADMIN, ROLE_CANDIDATE, ROLE_TEACHER
from service.core import codec, logs
from service.core.errors import (
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationFailed,
    VolregError,
)
from service.core.ids import id_problem
from service.core.metrics import exposition
from service.core.token_keys import is_metrics_token
from service.core.tokens import BadToken, Claims
from service.forms.save import Saved, choices_of, iso_us
from service.http import keys
from service.http.body import body_limits, decode_json, read_body, read_json
from service.http.clients import Network, client_address
from service.http.params import path_param
from service.http.patterns import (
    BATCH,
    BATCH_RULE,
    CANDIDATE_ID,
    CANDIDATE_ID_RULE,
    IDEMPOTENCY_KEY,
)
from service.http.respond import json_response

# The request's verified claims, once _candidate has checked them.
CLAIMS = web.RequestKey("claims", Claims)


def origin_of(request: web.Request) -> Origin:
    """Who sent this request and from where, for the save history."""
    claims: Claims = request[CLAIMS]
    proxies: list[Network] = request.app[keys.PROXIES]
    return Origin(
        client=client_address(request, proxies)[:64],
        request_id=logs.request_id.get()[:64],
        subject=claims.subject,
        role=claims.role,
    )


def _invalid(path: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{path}: {message}", details=[{"path": path, "message": message}])


def _claims(request: web.Request) -> Claims:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send 'Authorization: Bearer <token>' from /api/v1/auth/login")
    try:
        return request.app[keys.SIGNER].verify(token.strip(), time.time())
    except BadToken as exc:
        raise Unauthorized(str(exc)) from None


def require_role(request: web.Request, *roles: str) -> Claims:
    """The request's claims, if its token has one of ``roles`` (403 otherwise)."""
    claims = _claims(request)
    if claims.role not in roles:
        raise Forbidden(f"this needs the {' or '.join(roles)} role")
    return claims


def path_candidate_id(request: web.Request) -> str:
    """The path's candidate ID: 422 when it is not shaped like one (the document's pattern),
    404 when its check digit does not match (no candidate can have it)."""
    candidate_id = path_param(request, "candidate_id", CANDIDATE_ID, CANDIDATE_ID_RULE)
    if id_problem(candidate_id):
        raise NotFound("no candidate has this ID: its check digit does not match")
    return candidate_id


async def _candidate(request: web.Request) -> str:
    """The path's candidate ID, validated, for that candidate's own token, or for a teacher
    of the candidate's school reading (GET) — never writing."""
    claims = _claims(request)
    candidate_id = path_candidate_id(request)
    request[CLAIMS] = claims
    if claims.role == ROLE_TEACHER and request.method == "GET":
        await request.app[keys.SCHOOLS].require_reader(claims.school, candidate_id)
        return candidate_id
    if claims.role != ROLE_CANDIDATE or claims.subject != candidate_id:
        raise Forbidden("this token does not reach that candidate's records")
    return candidate_id


async def form_key(request: web.Request) -> FormKey:
    """The path's form, for the candidate's own token or (GET) a teacher of their school."""
    return await _form_key(request)


async def _form_key(request: web.Request) -> FormKey:
    candidate_id = await _candidate(request)
    return FormKey(candidate_id, path_param(request, "batch", BATCH, BATCH_RULE))


def _validated(exc: Problem) -> ValidationFailed:
    return ValidationFailed(str(exc), details=exc.problems)


async def login(request: web.Request) -> web.Response:
    data = await read_json(request, *body_limits(request))
    # Counted by the kind the body looks like, as parse_login reads it.
    kind = "staff" if isinstance(data, dict) and "username" in data else "candidate"
    try:
        token, claims = await _logged_in(request, data)
    except VolregError as exc:
        request.app[keys.METRICS].login_failures.labels(kind, exc.code).inc()
        raise
    return json_response(
        {
            "token": token,
            "expires_at": datetime.fromtimestamp(claims.expires_at).astimezone().isoformat(),
            "role": claims.role,
        }
    )


async def _logged_in(request: web.Request, data: Any) -> tuple[str, Claims]:
    try:
        body = parse_login(data)
    except Problem as exc:
        raise _validated(exc) from None
    accounts = request.app[keys.ACCOUNTS]
    proxies: list[Network] = request.app[keys.PROXIES]
    client = client_address(request, proxies)
    if isinstance(body, CandidateLogin):
        if id_problem(body.candidate_id):  # shaped like an ID (the model checks that)
            raise Unauthorized("wrong candidate ID or password (the ID's check digit is wrong)")
        return await accounts.login_candidate(body.candidate_id, body.password, client)
    return await accounts.login_staff(body.username, body.password, client)


async def logout(request: web.Request) -> web.Response:
    """Every token of the caller's account stops working (all devices): the account's token
    generation goes up."""
    claims = _claims(request)
    await request.app[keys.REVOCATIONS].revoke(claims)
    return json_response({"status": "logged_out"})


async def get_exam(request: web.Request) -> web.Response:
    candidate_id = await _candidate(request)
    exam = await request.app[keys.ACCOUNTS].exam(candidate_id)
    request.app[keys.HOT_EVENTS].read(f"exam:{candidate_id}")
    return json_response(exam)


async def get_form(request: web.Request) -> web.Response:
    key = await _form_key(request)
    record = await request.app[keys.FORMS].read(key)
    request.app[keys.HOT_EVENTS].read(f"form:{key.candidate_id}:{key.batch}")
    meta = orjson.dumps(
        {
            "version": record.version,
            "updated_at": iso_us(record.updated_us),
            "status": record.status,
        }
    )
    choices = codec.inflate_json(record.payload)
    if not (choices.startswith(b"[") and choices.endswith(b"]")):
        # Not the JSON list the save path stores: go the long way (it raises if unreadable).
        choices = orjson.dumps(choices_of(record))
    # The stored choices are compact JSON already: spliced in, not parsed and encoded again.
    return web.Response(
        body=b'{"choices":' + choices + b"," + meta[1:],
        content_type="application/json",
        charset="utf-8",
    )


async def parse_save(request: web.Request) -> tuple[FormKey, FormBody, str | None]:
    """Auth, path, Idempotency-Key and body of a save (also used by the naive benchmark route,
    so both designs pay for the same checks)."""
    key = await _form_key(request)
    idem = request.headers.get("Idempotency-Key")
    if idem is not None and not IDEMPOTENCY_KEY.fullmatch(idem):
        raise _invalid("header.Idempotency-Key", "must be 1-128 visible ASCII characters")
    raw = await read_body(request, *body_limits(request))
    try:
        form = parse_form_json(raw) or parse_form(decode_json(raw))
    except Problem as exc:
        raise _validated(exc) from None
    return key, form, idem


async def put_form(request: web.Request) -> web.Response:
    key, form, idem = await parse_save(request)
    metrics = request.app[keys.METRICS]
    try:
        saved: Saved = await request.app[keys.FORMS].save(
            key, form, idem, datetime.now(), origin_of(request)
        )
    except VolregError as exc:
        metrics.saves.labels(exc.code).inc()
        raise
    metrics.saves.labels("ok").inc()
    request.app[keys.HOT_EVENTS].saved(key.batch, form.choices)
    return json_response(saved.to_json())


async def live(_: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    """This process can serve (see probes.Readiness): what load balancers and k8s ask."""
    ok, checks = request.app[keys.READINESS].state()
    return json_response(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
    )


async def deps(request: web.Request) -> web.Response:
    """Every dependency pinged now: for people and dashboards, not for load balancers."""
    checks = await request.app[keys.READINESS].dependencies()
    ok = all(v == "ok" for v in checks.values())
    return json_response(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
    )


async def metrics(request: web.Request) -> web.Response:
    # Route names, error rates and timings are reconnaissance: admins, or a scraper holding
    # VOLREG_METRICS_TOKEN, only.
    token = request.app[keys.SETTINGS].metrics_token
    if not is_metrics_token(request.headers.get("Authorization", ""), token):
        require_role(request, ROLE_ADMIN)
    metrics = request.app[keys.METRICS]
    metrics.refresh()
    body, content_type = exposition(metrics.registry)
    return web.Response(body=body, headers={"Content-Type": content_type})


def add_routes(app: web.Application) -> None:
    app.router.add_post(urls.LOGIN, login)
    app.router.add_post(urls.LOGOUT, logout)
    app.router.add_get(urls.EXAM, get_exam)
    app.router.add_get(urls.FORM, get_form)
    app.router.add_put(urls.FORM, put_form)
    app.router.add_get(urls.LIVE, live)
    app.router.add_get(urls.READY, ready)
    app.router.add_get(urls.DEPS, deps)
    app.router.add_get(urls.METRICS, metrics)
