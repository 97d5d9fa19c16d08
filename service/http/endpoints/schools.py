"""Teachers' endpoints: their school's candidates with each one's filing status."""

from __future__ import annotations

from aiohttp import web

from schemas import urls
from service.accounts.login import ROLE_ADMIN, ROLE_TEACHER
from service.http.endpoints.candidates import require_role
from service.http.keys import SCHOOLS
from service.http.params import invalid, limit_param, path_param, query_param
from service.http.patterns import BATCH, SCHOOL, optional
from service.schools.schools import FILINGS, PAGE_MAX, Schools

_BATCH = optional(BATCH)
_PAGE_DEFAULT = 50


async def school_candidates(request: web.Request) -> web.Response:
    """``?status=filed|unfiled&batch=&cursor=&limit=``: a page in candidate-ID order."""
    claims = require_role(request, ROLE_TEACHER, ROLE_ADMIN)
    school = path_param(request, "school", SCHOOL, "must be 1-16 digits")
    Schools.require_school(claims.role, claims.school, school)
    filing = request.query.get("status", "")
    if filing not in FILINGS:
        raise invalid("query.status", "filed or unfiled")
    batch = query_param(request, "batch", _BATCH, "a batch code")
    limit = limit_param(request, PAGE_MAX, _PAGE_DEFAULT)
    page = await request.app[SCHOOLS].page(
        school, filing, batch, request.query.get("cursor", ""), limit
    )
    return web.json_response(page)


def add_staff_routes(app: web.Application) -> None:
    app.router.add_get(urls.SCHOOL_CANDIDATES, school_candidates)
