"""Filing progress (admins: the province and every school; teachers: their own school)."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from schemas import urls
from schemas.http import Problem, parse_submit
from schemas.records import STATUS_SUBMITTED, FormKey
from service.accounts.login import ROLE_ADMIN, ROLE_CANDIDATE, ROLE_TEACHER
from service.core.errors import ValidationFailed
from service.filing.history import PAGE_MAX
from service.http import keys
from service.http.body import body_limits, read_json
from service.http.endpoints.candidates import (
    form_key,
    origin_of,
    path_candidate_id,
    require_role,
)
from service.http.endpoints.hot import require_batch
from service.http.params import limit_param, path_param, query_param
from service.http.patterns import BATCH, BATCH_RULE, HISTORY_CURSOR, SCHOOL, optional
from service.http.respond import json_response
from service.schools.schools import Schools

_CURSOR = optional(HISTORY_CURSOR)
_HISTORY_PAGE = 20


async def admin_progress(request: web.Request) -> web.Response:
    """``?batch=``: candidates per status province-wide and per school."""
    require_role(request, ROLE_ADMIN)
    batch = await require_batch(request)
    return json_response(await request.app[keys.PROGRESS].province(batch))


async def school_progress(request: web.Request) -> web.Response:
    """``?batch=``: candidates per status of one school (its teachers, admins)."""
    claims = require_role(request, ROLE_TEACHER, ROLE_ADMIN)
    school = path_param(request, "school", SCHOOL, "must be 1-16 digits")
    Schools.require_school(claims.role, claims.school, school)
    batch = await require_batch(request)
    return json_response(await request.app[keys.PROGRESS].school(batch, school))


async def form_history(request: web.Request) -> web.Response:
    """``?cursor=&limit=``: the form's saves and submissions, newest first (the candidate,
    teachers of their school, admins)."""
    claims = require_role(request, ROLE_CANDIDATE, ROLE_TEACHER, ROLE_ADMIN)
    if claims.role == ROLE_ADMIN:
        candidate_id = path_candidate_id(request)
        key = FormKey(candidate_id, path_param(request, "batch", BATCH, BATCH_RULE))
    else:
        key = await form_key(request)  # the candidate themselves, or their school's teacher
    await request.app[keys.CATALOGUE].require_batch(key.batch)
    cursor = query_param(request, "cursor", _CURSOR, "next_cursor of the previous page")
    limit = limit_param(request, PAGE_MAX, _HISTORY_PAGE)
    page = await request.app[keys.HISTORY].page(
        key.candidate_id, key.batch, int(cursor) if cursor else None, limit
    )
    return json_response(page)


async def submit_form(request: web.Request) -> web.Response:
    """``{"version": N}``: submit the version the candidate reviewed (the candidate only)."""
    key = await form_key(request)
    data = await read_json(request, *body_limits(request))
    try:
        body = parse_submit(data)
    except Problem as exc:
        raise ValidationFailed(str(exc), details=exc.problems) from None
    saved, _ = await request.app[keys.SUBMISSIONS].submit(
        key, body.version, datetime.now(), origin_of(request)
    )
    return json_response({**saved.to_json(), "status": STATUS_SUBMITTED})


def add_filing_routes(app: web.Application) -> None:
    app.router.add_post(urls.FORM_SUBMIT, submit_form)
    app.router.add_get(urls.FORM_HISTORY, form_history)
    app.router.add_get(urls.ADMIN_PROGRESS, admin_progress)
    app.router.add_get(urls.SCHOOL_PROGRESS, school_progress)
