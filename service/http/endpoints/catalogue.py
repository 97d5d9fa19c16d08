"""Catalogue endpoints: public reads through the multi-level cache, admin publishes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from schemas import urls
from schemas.http import Problem, parse_batch, parse_institution
from service.accounts.login import ROLE_ADMIN
from service.catalogue.catalogue import KEY_BATCHES, KEY_INSTITUTIONS, institution_key
from service.core.errors import NotFound, ValidationFailed
from service.http.body import body_limits, read_json
from service.http.endpoints.candidates import require_role
from service.http.keys import CATALOGUE, HOT_EVENTS
from service.http.params import path_param
from service.http.patterns import BATCH, BATCH_RULE, INSTITUTION

T = TypeVar("T")


def _code(request: web.Request) -> str:
    return path_param(request, "code", INSTITUTION, "must be 5 digits")


async def list_institutions(request: web.Request) -> web.Response:
    institutions = await request.app[CATALOGUE].institutions()
    request.app[HOT_EVENTS].read(KEY_INSTITUTIONS)
    return web.json_response({"institutions": institutions})


async def get_institution(request: web.Request) -> web.Response:
    code = _code(request)
    institution = await request.app[CATALOGUE].institution(code)
    if institution is None:
        raise NotFound(f"no institution {code} in the catalogue")
    request.app[HOT_EVENTS].read(institution_key(code))
    return web.json_response(institution)


async def list_batches(request: web.Request) -> web.Response:
    batches = await request.app[CATALOGUE].batches()
    request.app[HOT_EVENTS].read(KEY_BATCHES)
    return web.json_response({"batches": batches})


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
    code = path_param(request, "batch", BATCH, BATCH_RULE)
    body = await _body(request, parse_batch)
    outcome = await request.app[CATALOGUE].put_batch(code, body)
    return web.json_response({"batch": code, **outcome})


def add_catalogue_routes(app: web.Application) -> None:
    app.router.add_get(urls.CATALOGUE_INSTITUTIONS, list_institutions)
    app.router.add_get(urls.CATALOGUE_INSTITUTION, get_institution)
    app.router.add_get(urls.CATALOGUE_BATCHES, list_batches)
    app.router.add_put(urls.ADMIN_INSTITUTION, put_institution)
    app.router.add_put(urls.ADMIN_BATCH, put_batch)
