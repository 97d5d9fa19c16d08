"""One middleware: request id, error mapping to ``{"error": {...}}``, metrics, access log."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from random import random
from typing import Any

from aiohttp import web

from schemas import urls
from service.core import logs
from service.core.errors import LoginBusy, TooManyRequests, Unavailable, VolregError
from service.core.metrics import Metrics
from service.core.tokens import BadToken
from service.http import keys
from service.http.respond import json_response

log = logging.getLogger("volreg.http")
_REQUEST_ID = re.compile(r"^[\w.-]{1,64}$")
_SLOW_S = 0.5
_QUIET = frozenset({urls.LIVE, urls.READY, urls.DEPS, urls.METRICS})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def _from_volreg(exc: VolregError, retry_after_s: int) -> web.Response:
    response = json_response(error_body(exc.code, exc.message, exc.details), status=exc.status)
    if isinstance(exc, LoginBusy) and exc.retry_after_s is not None:
        response.headers["Retry-After"] = str(exc.retry_after_s)
    elif isinstance(exc, Unavailable):
        response.headers["Retry-After"] = str(retry_after_s)
    elif isinstance(exc, TooManyRequests):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def _from_http(exc: web.HTTPException) -> web.Response:
    code = exc.reason.lower().replace(" ", "_")
    response = json_response(error_body(code, exc.text or exc.reason), status=exc.status)
    allow = exc.headers.get("Allow")
    if allow:
        response.headers["Allow"] = allow
    return response


def make_middleware(metrics: Metrics, retry_after_s: int, access_log_sample: float = 1.0) -> Any:
    counters: dict[tuple[str, str, str], Any] = {}
    histograms: dict[str, Any] = {}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        incoming = request.headers.get("X-Request-Id", "")
        rid = incoming if _REQUEST_ID.match(incoming) else os.urandom(8).hex()
        token = logs.request_id.set(rid)
        started = time.perf_counter()
        try:
            response = await handler(request)
        except VolregError as exc:
            response = _from_volreg(exc, retry_after_s)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = _from_http(exc)
        except Exception:
            log.exception("unhandled error")
            response = json_response(
                error_body("internal", "internal error; see the server log", {"request_id": rid}),
                status=500,
            )
        elapsed = time.perf_counter() - started
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        labels = (name, request.method, str(response.status))
        counter = counters.get(labels)
        if counter is None:  # labels() takes a lock and hashes every call: resolve each once
            counter = counters[labels] = metrics.requests.labels(*labels)
        counter.inc()
        histogram = histograms.get(name)
        if histogram is None:
            histogram = histograms[name] = metrics.latency.labels(name)
        histogram.observe(elapsed)
        # The access log: every error and slow request; successful ones sampled, probes and
        # scrapes (every few seconds from each load balancer and Prometheus) not at all.
        if (
            response.status >= 400
            or elapsed > _SLOW_S
            or (name not in _QUIET and access_log_sample > 0 and random() < access_log_sample)
        ):
            fields = {
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "ms": round(elapsed * 1000, 2),
                "client": request.remote,
            }
            forwarded = request.headers.get("X-Forwarded-For")
            if forwarded:
                fields["forwarded_for"] = forwarded[:200]
            log.info("request", extra={"fields": fields})
        response.headers["X-Request-Id"] = rid
        logs.request_id.reset(token)
        return response

    return middleware


@web.middleware
async def revocation(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a validly signed token whose account logged out (or changed) since it was
    issued. Invalid tokens pass on: the handler answers them 401 with the reason."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    revocations = request.app.get(keys.REVOCATIONS)
    if scheme.lower() == "bearer" and token and revocations is not None:
        try:
            claims = request.app[keys.SIGNER].verify(token.strip(), time.time())
        except BadToken:
            pass
        else:
            await revocations.require_current(claims)
    return await handler(request)
