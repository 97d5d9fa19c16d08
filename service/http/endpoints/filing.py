"""Filing progress (admins: the province and every school; teachers: their own school)."""

from __future__ import annotations

import re

from aiohttp import web

from schemas import urls
from service.accounts.login import ROLE_ADMIN, ROLE_TEACHER
from service.filing.progress import Progress
from service.http.endpoints.candidates import require_role
from service.http.endpoints.hot import require_batch
from service.http.params import path_param
from service.http.respond import json_response
from service.schools.schools import Schools

PROGRESS = web.AppKey("progress", Progress)
_SCHOOL = re.compile(r"^[0-9]{1,16}$")


async def admin_progress(request: web.Request) -> web.Response:
    """``?batch=``: candidates per status province-wide and per school."""
    require_role(request, ROLE_ADMIN)
    batch = await require_batch(request)
    return json_response(await request.app[PROGRESS].province(batch))


async def school_progress(request: web.Request) -> web.Response:
    """``?batch=``: candidates per status of one school (its teachers, admins)."""
    claims = require_role(request, ROLE_TEACHER, ROLE_ADMIN)
    school = path_param(request, "school", _SCHOOL, "must be 1-16 digits")
    Schools.require_school(claims.role, claims.school, school)
    batch = await require_batch(request)
    return json_response(await request.app[PROGRESS].school(batch, school))


def add_filing_routes(app: web.Application) -> None:
    app.router.add_get(urls.ADMIN_PROGRESS, admin_progress)
    app.router.add_get(urls.SCHOOL_PROGRESS, school_progress)
