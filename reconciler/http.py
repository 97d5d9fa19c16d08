"""The long-running reconciler's own HTTP endpoints: /metrics, /status (run progress), live.

/status lists candidate IDs with unrepaired drift and /metrics the service's internals: both
need an admin token, like the API's /metrics, whose account has not logged out (or changed)
since: its token generation is checked as the API checks it (service.core.revocation)."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from reconciler.metrics import ReconcileMetrics
from reconciler.run import Reconciler
from schemas import urls
from service.core.errors import Unauthorized
from service.core.revocation import Revocations
from service.core.token_keys import is_metrics_token
from service.core.tokens import BadToken, TokenSigner

# The admin role's name in tokens (service.accounts.login.ROLE_ADMIN; the reconciler uses no
# feature package, a test keeps the two equal).
ROLE_ADMIN = "admin"
STATUS = "/status"
_SIGNER = web.AppKey("signer", TokenSigner)
_SCRAPE = web.AppKey("metrics_token", str)
_RECONCILER = web.AppKey("reconciler", Reconciler)
_METRICS = web.AppKey("metrics", ReconcileMetrics)
_REVOCATIONS = web.AppKey("revocations", Revocations)


async def _status(request: web.Request) -> web.Response:
    if refused := await _refused(request):
        return refused
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
    scrape = is_metrics_token(request.headers.get("Authorization", ""), request.app[_SCRAPE])
    if not scrape and (refused := await _refused(request)):
        return refused
    body = generate_latest(request.app[_METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _live(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _refused(request: web.Request) -> web.Response | None:
    """401/403 in the API's error shape unless the request carries a current admin token."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    try:
        if scheme.lower() != "bearer":
            raise BadToken("send 'Authorization: Bearer <token>'")
        claims = request.app[_SIGNER].verify(token.strip(), time.time())
    except BadToken as exc:
        return _error(401, "unauthorized", str(exc))
    if claims.role != ROLE_ADMIN:
        return _error(403, "forbidden", "this needs the admin role")
    try:
        await request.app[_REVOCATIONS].require_current(claims)
    except Unauthorized as exc:
        return _error(401, "unauthorized", exc.message)
    return None


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def create_status_app(
    reconciler: Reconciler,
    metrics: ReconcileMetrics,
    signer: TokenSigner,
    revocations: Revocations,
    metrics_token: str = "",
) -> web.Application:
    """``metrics_token`` (VOLREG_METRICS_TOKEN) also opens /metrics, never /status."""
    app = web.Application()
    app[_SIGNER] = signer
    app[_REVOCATIONS] = revocations
    app[_SCRAPE] = metrics_token
    app[_RECONCILER] = reconciler
    app[_METRICS] = metrics
    app.router.add_get(STATUS, _status)
    app.router.add_get(urls.METRICS, _metrics)
    app.router.add_get(urls.LIVE, _live)
    return app
