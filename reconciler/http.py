"""The long-running reconciler's own HTTP endpoints: /metrics, /status (run progress), live."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from reconciler.metrics import ReconcileMetrics
from reconciler.run import Reconciler
from schemas import urls

STATUS = "/status"
_RECONCILER = web.AppKey("reconciler", Reconciler)
_METRICS = web.AppKey("metrics", ReconcileMetrics)


async def _status(request: web.Request) -> web.Response:
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
    body = generate_latest(request.app[_METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _live(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_status_app(reconciler: Reconciler, metrics: ReconcileMetrics) -> web.Application:
    app = web.Application()
    app[_RECONCILER] = reconciler
    app[_METRICS] = metrics
    app.router.add_get(STATUS, _status)
    app.router.add_get(urls.METRICS, _metrics)
    app.router.add_get(urls.LIVE, _live)
    return app
