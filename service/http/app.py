"""``build_app``: middleware and the routes of every feature around the use cases it is given.

It opens nothing: ``services`` (from ``service.main.wiring``) is entered as a cleanup context
on start-up, so connections are made only then and closed on exit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from aiohttp import web

from service.accounts.login import Accounts
from service.catalogue.catalogue import Catalogue
from service.console.status import Pipeline
from service.core.metrics import Metrics
from service.core.names import Names
from service.core.revocation import Revocations
from service.core.settings import Settings
from service.core.token_keys import previous_secrets
from service.core.tokens import TokenSigner
from service.filing.history import History
from service.filing.progress import Progress
from service.forms.save import Forms
from service.forms.submit import Submissions
from service.hot.aggregate import Aggregator
from service.hot.events import HotEvents
from service.http import keys
from service.http.clients import trusted_networks
from service.http.consumer_app import sampling
from service.http.endpoints.candidates import add_routes
from service.http.endpoints.catalogue import add_catalogue_routes
from service.http.endpoints.console import add_console_routes
from service.http.endpoints.docs import add_docs_routes
from service.http.endpoints.filing import add_filing_routes
from service.http.endpoints.hot import add_hot_routes
from service.http.endpoints.imports import add_admin_routes
from service.http.endpoints.naive import NAIVE, NaiveForms, add_naive_routes
from service.http.endpoints.schools import add_staff_routes
from service.http.keys import CATALOGUE, IMPORT_JOBS, IMPORTER, SCHOOLS
from service.http.middleware import make_middleware, revocation
from service.http.probes import Probes, Readiness
from service.imports.jobs import JobTable
from service.imports.pipeline import Importer
from service.schools.schools import Schools


@dataclass(frozen=True, slots=True)
class Services:
    """The use cases the routes call."""

    forms: Forms
    accounts: Accounts
    catalogue: Catalogue
    schools: Schools
    importer: Importer
    import_jobs: JobTable
    probes: Probes
    revocations: Revocations
    naive: NaiveForms | None = None  # only with ``bench_naive``
    # This process's own machinery readiness watches: a problem per name, None while fine.
    machinery: dict[str, Callable[[], str | None]] = field(default_factory=dict)
    hot_events: HotEvents | None = None  # None: saves and reads count nothing
    hot_view: Aggregator | None = None
    progress: Progress | None = None
    history: History | None = None
    submissions: Submissions | None = None
    pipeline: Pipeline | None = None


OpenServices = Callable[[web.Application], AbstractAsyncContextManager[Services]]


def build_app(settings: Settings, names: Names, services: OpenServices) -> web.Application:
    metrics = Metrics()
    # The body cap is enforced on the inflated body in read_json; this is aiohttp's own limit.
    app = web.Application(
        middlewares=[
            make_middleware(metrics, settings.retry_after_s, settings.access_log_sample),
            revocation,
        ],
        client_max_size=settings.max_body_bytes,
        # read_json inflates gzip/deflate itself, bounded, and answers any other coding 415.
        # aiohttp closes a connection idle for keepalive_timeout, also one whose request
        # headers are still incomplete: the header read timeout.
        handler_args={
            "auto_decompress": False,
            "keepalive_timeout": settings.http_header_timeout_s,
        },
    )
    app.on_response_prepare.append(_hide_server)
    app[keys.SETTINGS] = settings
    app[keys.NAMES] = names
    app[keys.SIGNER] = TokenSigner(settings.token_secret, previous_secrets(settings))
    app[keys.METRICS] = metrics
    app[keys.PROXIES] = trusted_networks(settings.trusted_proxies)

    async def dependencies(app: web.Application) -> AsyncIterator[None]:
        async with services(app) as s:
            app[keys.FORMS] = s.forms
            app[keys.ACCOUNTS] = s.accounts
            app[keys.REVOCATIONS] = s.revocations
            gauge = metrics.dependency_up
            readiness = Readiness(
                s.probes,
                settings.ready_connect_grace_s,
                machinery=s.machinery,
                on_result=lambda name, up: gauge.labels(name).set(1 if up else 0),
            )
            app[keys.READINESS] = readiness
            app[CATALOGUE] = s.catalogue
            app[SCHOOLS] = s.schools
            app[IMPORTER] = s.importer
            app[IMPORT_JOBS] = s.import_jobs
            if s.naive is not None:
                app[NAIVE] = s.naive
            app[keys.HOT_EVENTS] = s.hot_events or HotEvents(None, metrics.registry, 0, 0)
            if s.hot_view is not None:
                app[keys.HOT_VIEW] = s.hot_view
            if s.progress is not None:
                app[keys.PROGRESS] = s.progress
            if s.history is not None:
                app[keys.HISTORY] = s.history
            if s.submissions is not None:
                app[keys.SUBMISSIONS] = s.submissions
            if s.pipeline is not None:
                app[keys.PIPELINE] = s.pipeline

            async def refresh() -> None:
                metrics.refresh()

            async with (
                readiness.probing(settings.probe_interval_s),
                sampling(settings.probe_interval_s, refresh, "cache-metrics"),
            ):
                yield

    async def draining(app: web.Application) -> None:
        """Shutdown began: report not ready while the saves in flight finish."""
        if keys.READINESS in app:
            app[keys.READINESS].draining = True

    app.cleanup_ctx.append(dependencies)
    app.on_shutdown.append(draining)
    add_routes(app)
    add_staff_routes(app)
    add_catalogue_routes(app)
    add_admin_routes(app)
    add_hot_routes(app)
    add_filing_routes(app)
    add_console_routes(app)
    add_docs_routes(app)
    if settings.bench_naive:
        add_naive_routes(app)
    return app


async def _hide_server(_request: web.Request, response: web.StreamResponse) -> None:
    # aiohttp's default names its version (and Python's): a free hint at which CVEs apply.
    response.headers["Server"] = "volreg"
