"""The consumer's own small HTTP server: /metrics, /health/live and /health/ready (consuming)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from schemas import urls
from service.core.background import running
from service.core.errors import Unavailable
from service.core.metrics import ConsumerMetrics, exposition
from service.core.token_keys import is_metrics_token
from service.http.respond import json_response

log = logging.getLogger(__name__)
_METRICS = web.AppKey("metrics", ConsumerMetrics)
_CONSUMING = web.AppKey("consuming", asyncio.Event)
_SCRAPE = web.AppKey("metrics_token", str)


async def _metrics(request: web.Request) -> web.Response:
    token = request.app[_SCRAPE]
    if token and not is_metrics_token(request.headers.get("Authorization", ""), token):
        refused = json_response(
            {"error": {"code": "unauthorized", "message": "send the metrics token"}}, 401
        )
        refused.headers["WWW-Authenticate"] = "Bearer"
        return refused
    body, content_type = exposition(request.app[_METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": content_type})


async def _live(_: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _ready(request: web.Request) -> web.Response:
    ok = request.app[_CONSUMING].is_set()
    return json_response(
        {"status": "ok" if ok else "unavailable", "checks": {"consuming": str(ok).lower()}},
        status=200 if ok else 503,
    )


def create_consumer_app(
    metrics: ConsumerMetrics, consuming: asyncio.Event, metrics_token: str = ""
) -> web.Application:
    """``metrics_token`` (VOLREG_METRICS_TOKEN): when set, /metrics wants it as a bearer token,
    like the API's and the reconciler's; when empty it is open to whoever reaches the port."""
    app = web.Application()
    app[_SCRAPE] = metrics_token
    app[_METRICS] = metrics
    app[_CONSUMING] = consuming
    app.router.add_get(urls.METRICS, _metrics)
    app.router.add_get(urls.LIVE, _live)
    app.router.add_get(urls.READY, _ready)
    return app


@asynccontextmanager
async def serving(app: web.Application, host: str, port: int) -> AsyncIterator[None]:
    """``app`` on host:port for the duration (nothing when ``port`` is 0)."""
    if port == 0:
        yield
        return
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
            log.info("metrics on http://%s:%d%s", host, port, urls.METRICS)
        except OSError as exc:
            # Persisting saves matters more than being scraped: keep consuming.
            log.error("metrics endpoint not served on %s:%d: %s", host, port, exc)
        yield
    finally:
        await runner.cleanup()


@asynccontextmanager
async def sampling(
    interval_s: float, sample: Callable[[], Awaitable[None]], name: str
) -> AsyncIterator[None]:
    """Run ``sample`` every ``interval_s`` in a named background task; a dependency being
    down only skips a sample."""

    async def loop() -> None:
        while True:
            try:
                await sample()
            except Unavailable as exc:
                log.debug("%s skipped: %s", name, exc)
            except Exception:
                log.exception("%s failed", name)
            await asyncio.sleep(interval_s)

    async with running(loop(), name=name):
        yield
