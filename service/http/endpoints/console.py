"""The admin console: a static page shipped in the package (its chart library vendored, nothing
from a CDN) that reads the same JSON APIs as every other client; logging in happens in the
page, so the files themselves are public."""

from __future__ import annotations

from functools import cache
from importlib import resources

from aiohttp import web

from schemas import urls
from service.accounts.login import ROLE_ADMIN
from service.core.errors import NotFound
from service.http import keys
from service.http.endpoints.candidates import require_role
from service.http.respond import json_response

_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".md": "text/markdown",
}
ASSETS = (
    "index.html",
    "console.js",
    "console.css",
    "vendor/chart.umd.min.js",
    "vendor/LICENSE-chart.js.md",
)


@cache
def _asset(name: str) -> bytes:
    return resources.files("service.http").joinpath(f"console/{name}").read_bytes()


def _response(name: str) -> web.Response:
    content_type = _TYPES[name[name.rindex(".") :]]
    return web.Response(
        body=_asset(name),
        content_type=content_type,
        charset="utf-8",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


async def console_page(_: web.Request) -> web.Response:
    return _response("index.html")


async def console_asset(request: web.Request) -> web.Response:
    name = request.match_info["asset"]
    if name not in ASSETS:
        raise NotFound(f"no console file {name!r}")
    return _response(name)


async def pipeline(request: web.Request) -> web.Response:
    """Messages waiting per form queue, dead letters, hot events waiting, the last reconcile
    run (admins)."""
    require_role(request, ROLE_ADMIN)
    return json_response(await request.app[keys.PIPELINE].status())


def add_console_routes(app: web.Application) -> None:
    app.router.add_get(urls.ADMIN_PIPELINE, pipeline)
    app.router.add_get(urls.CONSOLE, console_page)
    app.router.add_get(urls.CONSOLE_ASSET, console_asset)
