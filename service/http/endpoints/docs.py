"""The API's own description over HTTP: ``/openapi.json`` (the committed document) and a
browsable ``/docs`` page rendered by a small script of our own (no CDN: it works offline)."""

from __future__ import annotations

from functools import cache
from importlib import resources

from aiohttp import web

from schemas import urls

# The page loads only its own script and style, and the document from this origin.
_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'"
_STATIC = {
    urls.DOCS: ("docs.html", "text/html"),
    urls.DOCS_SCRIPT: ("viewer.js", "text/javascript"),
    urls.DOCS_STYLE: ("viewer.css", "text/css"),
}


@cache
def openapi_bytes() -> bytes:
    """schemas/openapi.json as committed (a test keeps it equal to what the router serves)."""
    return resources.files("schemas").joinpath("openapi.json").read_bytes()


@cache
def _static(name: str) -> bytes:
    return resources.files("service.http").joinpath(f"static/{name}").read_bytes()


async def openapi(_: web.Request) -> web.Response:
    return web.Response(
        body=openapi_bytes(), content_type="application/json", headers={"Cache-Control": "no-cache"}
    )


async def static(request: web.Request) -> web.Response:
    name, content_type = _STATIC[request.path]
    return web.Response(
        body=_static(name),
        content_type=content_type,
        charset="utf-8",
        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"},
    )


def add_docs_routes(app: web.Application) -> None:
    app.router.add_get(urls.OPENAPI, openapi)
    for path in _STATIC:
        app.router.add_get(path, static)
