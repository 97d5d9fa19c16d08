"""``create_app``: a pure factory; every connection is a cleanup context, closed on exit."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from service.adapters.brokers import open_form_broker
from service.adapters.mysql_db import open_database
from service.adapters.rabbit import open_broker
from service.adapters.redis_cache import open_cache
from service.domain.passwords import Passwords
from service.domain.tokens import TokenSigner
from service.http import keys
from service.http.admin_routes import add_admin_routes
from service.http.catalogue_routes import add_catalogue_routes
from service.http.middleware import make_middleware
from service.http.probes import Probes
from service.http.routes import add_routes
from service.http.staff_routes import add_staff_routes
from service.http.staff_setup import open_staff_parts
from service.metrics import Metrics
from service.naive import NAIVE, NaiveForms, add_naive_routes
from service.names import Names
from service.settings import Settings
from service.usecases.accounts import Accounts
from service.usecases.batches import BatchWindows
from service.usecases.forms import Forms
from service.usecases.login_guard import LoginGuard

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
    add_staff_routes(app)
    add_catalogue_routes(app)
    add_admin_routes(app)
    if settings.bench_naive:
        add_naive_routes(app)
    return app


async def _dependencies(app: web.Application) -> AsyncIterator[None]:
    settings, names = app[keys.SETTINGS], app[keys.NAMES]
    if settings.uses_dev_secret:
        log.warning("VOLREG_TOKEN_SECRET is not set: tokens use the development secret")
    async with (
        open_cache(settings, names) as cache,
        open_database(settings) as db,
        open_broker(settings, names) as broker,
        open_form_broker(settings, names, broker) as forms_broker,
        open_staff_parts(app, db, cache, broker) as staff,
    ):
        # The catalogue's multi-level cache holds the batches: no second cache in front.
        batches = BatchWindows(staff.catalogue, 0.0, on_miss=staff.catalogue.reload_batches)
        app[keys.FORMS] = Forms(cache, forms_broker, db, batches, staff.catalogue)
        if settings.bench_naive:
            app[NAIVE] = NaiveForms(db, batches, staff.catalogue)
        passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib)
        app[keys.ACCOUNTS] = Accounts(
            db,
            cache,
            passwords,
            app[keys.SIGNER],
            settings.token_ttl_s,
            staff=staff.staff,
            exams=staff.exams,
            guard=LoginGuard(
                cache, settings.login_failures_limit, settings.login_failures_window_s
            ),
        )
        app[keys.PROBES] = Probes(
            {"redis": cache.ping, "broker": forms_broker.ping, "mysql": db.ping},
            timeout_s=min(settings.redis_timeout_s, settings.mysql_timeout_s),
        )
        yield
