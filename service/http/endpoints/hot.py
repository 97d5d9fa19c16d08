"""Hot items: the admins' top lists, and the application keys the other handlers use to
count their saves and reads."""

from __future__ import annotations

from aiohttp import web

from schemas import urls
from service.accounts.login import ROLE_ADMIN
from service.http import keys
from service.http.endpoints.candidates import require_role
from service.http.params import limit_param, query_param
from service.http.patterns import BATCH
from service.http.respond import json_response

_LIMIT_MAX = 100


async def require_batch(request: web.Request) -> str:
    """The ``batch`` query parameter, which must name a batch of the catalogue (404)."""
    batch = query_param(request, "batch", BATCH, "a batch code")
    await request.app[keys.CATALOGUE].require_batch(batch)
    return batch


async def hot_items(request: web.Request) -> web.Response:
    """``?batch=&window=5m|1h|batch&limit=``: most-chosen institutions and majors, hottest
    read keys."""
    require_role(request, ROLE_ADMIN)
    batch = await require_batch(request)
    limit = limit_param(request, _LIMIT_MAX, 10)
    window = request.query.get("window", "5m")
    return json_response(await request.app[keys.HOT_VIEW].top(batch, window, limit))


def add_hot_routes(app: web.Application) -> None:
    app.router.add_get(urls.ADMIN_HOT, hot_items)
