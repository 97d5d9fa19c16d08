"""The long-running reconciler's own HTTP endpoints: /metrics, /status (run progress), live.

/status lists candidate IDs with unrepaired drift and /metrics the service's internals: both
need an admin token, like the API's /metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from reconciler.metrics import ReconcileMetrics
from reconciler.run import Reconciler
from service.domain.tokens import TokenSigner
from service.errors import VolregError
from service.http import keys, urls
from service.http.middleware import error_body
from service.http.routes import require_role
from service.usecases.accounts import ROLE_ADMIN

STATUS = "/status"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_RECONCILER = web.AppKey("reconciler", Reconciler)
_METRICS = web.AppKey("metrics", ReconcileMetrics)


async def _status(request: web.Request) -> web.Response:
    require_role(request, ROLE_ADMIN)
    p = request.app[_RECONCILER].progress
    return web.json_response(
        {
            "running": p.running,
            "mode": p.mode,
            "shards_done": p.shards_done,
            "shards_total": p.shards_total,
            "current": p.current.to_json() if p.running and p.current else None,
            "last": p.last.to_json() if p.last else None,
            "recent": [r.to_json() for r in p.history],
        }
    )


async def _metrics(request: web.Request) -> web.Response:
    require_role(request, ROLE_ADMIN)
    body = generate_latest(request.app[_METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _live(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except VolregError as exc:
        return web.json_response(error_body(exc.code, exc.message), status=exc.status)


def create_status_app(
    reconciler: Reconciler, metrics: ReconcileMetrics, signer: TokenSigner
) -> web.Application:
    app = web.Application(middlewares=[_errors])
    app[keys.SIGNER] = signer
    app[_RECONCILER] = reconciler
    app[_METRICS] = metrics
    app.router.add_get(STATUS, _status)
    app.router.add_get(urls.METRICS, _metrics)
    app.router.add_get(urls.LIVE, _live)
    return app
