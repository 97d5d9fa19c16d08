"""``create_app``: a pure factory; every connection is a cleanup context, closed on exit."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from service.adapters.mysql_db import open_database
from service.adapters.rabbit import open_broker
from service.adapters.redis_cache import open_cache
from service.domain.passwords import Passwords
from service.domain.tokens import TokenSigner
from service.http import keys
from service.http.middleware import make_middleware
from service.http.probes import Probes
from service.http.routes import add_routes
from service.metrics import Metrics
from service.names import Names
from service.settings import Settings
from service.usecases.accounts import Accounts
from service.usecases.batches import BatchWindows
from service.usecases.forms import Forms

log = logging.getLogger(__name__)


def names_of(settings: Settings) -> Names:
    return Names(settings.key_prefix, settings.queue_prefix, settings.shards, settings.queues)


def create_app(settings: Settings) -> web.Application:
    metrics = Metrics()
    # The body cap is enforced on the inflated body in read_json; this is aiohttp's own limit.
    app = web.Application(
        middlewares=[make_middleware(metrics, settings.retry_after_s)],
        client_max_size=settings.max_body_bytes,
    )
    app[keys.SETTINGS] = settings
    app[keys.NAMES] = names_of(settings)
    app[keys.SIGNER] = TokenSigner(settings.token_secret)
    app[keys.METRICS] = metrics
    app.cleanup_ctx.append(_dependencies)
    add_routes(app)
    return app


async def _dependencies(app: web.Application) -> AsyncIterator[None]:
    settings, names = app[keys.SETTINGS], app[keys.NAMES]
    if settings.uses_dev_secret:
        log.warning("VOLREG_TOKEN_SECRET is not set: tokens use the development secret")
    async with (
        open_cache(settings, names) as cache,
        open_database(settings) as db,
        open_broker(settings, names) as broker,
    ):
        batches = BatchWindows(db, settings.catalogue_ttl_s)
        app[keys.FORMS] = Forms(cache, broker, db, batches)
        passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib)
        app[keys.ACCOUNTS] = Accounts(db, cache, passwords, app[keys.SIGNER], settings.token_ttl_s)
        app[keys.PROBES] = Probes(
            {"redis": cache.ping, "broker": broker.ping, "mysql": db.ping},
            timeout_s=min(settings.redis_timeout_s, settings.mysql_timeout_s),
        )
        yield
