"""Catalogue endpoints: public reads through the multi-level cache, admin publishes."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from schemas import urls
from schemas.http import Problem, parse_batch, parse_institution
from service.accounts.login import ROLE_ADMIN
from service.core.errors import NotFound, ValidationFailed
from service.http.body import body_limits, read_json
from service.http.endpoints.candidates import require_role
from service.http.keys import CATALOGUE
from service.http.params import path_param

_INSTITUTION = re.compile(r"^[0-9]{5}$")
_BATCH = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
T = TypeVar("T")


def _code(request: web.Request) -> str:
    return path_param(request, "code", _INSTITUTION, "must be 5 digits")


async def list_institutions(request: web.Request) -> web.Response:
    return web.json_response({"institutions": await request.app[CATALOGUE].institutions()})


async def get_institution(request: web.Request) -> web.Response:
    code = _code(request)
    institution = await request.app[CATALOGUE].institution(code)
    if institution is None:
        raise NotFound(f"no institution {code} in the catalogue")
    return web.json_response(institution)


async def list_batches(request: web.Request) -> web.Response:
    return web.json_response({"batches": await request.app[CATALOGUE].batches()})


async def _body(request: web.Request, parse: Callable[[Any], T]) -> T:
    data = await read_json(request, *body_limits(request))
    try:
        return parse(data)
    except Problem as exc:
        raise ValidationFailed(str(exc), details=exc.problems) from None


async def put_institution(request: web.Request) -> web.Response:
    require_role(request, ROLE_ADMIN)
    code = _code(request)
    body = await _body(request, parse_institution)
    outcome = await request.app[CATALOGUE].put_institution(code, body)
    return web.json_response({"institution": code, **outcome})


async def put_batch(request: web.Request) -> web.Response:
    require_role(request, ROLE_ADMIN)
    code = path_param(request, "batch", _BATCH, "must be 1-32 lowercase letters, digits or '-'")
    body = await _body(request, parse_batch)
    outcome = await request.app[CATALOGUE].put_batch(code, body)
    return web.json_response({"batch": code, **outcome})


def add_catalogue_routes(app: web.Application) -> None:
    app.router.add_get(urls.CATALOGUE_INSTITUTIONS, list_institutions)
    app.router.add_get(urls.CATALOGUE_INSTITUTION, get_institution)
    app.router.add_get(urls.CATALOGUE_BATCHES, list_batches)
    app.router.add_put(urls.ADMIN_INSTITUTION, put_institution)
    app.router.add_put(urls.ADMIN_BATCH, put_batch)
