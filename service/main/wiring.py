"""The one place that opens adapters and builds the use cases on them: the API (``create_app``),
the consumer, ``volreg import``, ``volreg admin`` and ``volreg batch``.

Each feature depends on its ports only; here they meet the adapters of ``service.storage``
and the features' own tables. Tests pass their own ``Adapters`` to ``create_app``."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry

from service.accounts.guard import HashQueue, LoginGuard, LoginLimits
from service.accounts.login import Accounts, StaffStore
from service.accounts.mysql import StaffTables
from service.accounts.staff import create_account
from service.catalogue import mysql as catalogue_mysql
from service.catalogue.broadcast import open_broadcast
from service.catalogue.catalogue import (
    KEY_BATCHES,
    KEY_INSTITUTIONS,
    Catalogue,
    CatalogueCopies,
    CatalogueTables,
    Invalidations,
    institution_key,
)
from service.console.mysql import ConsoleTables
from service.console.status import LastReconcile, Pipeline, QueueCounts
from service.core.errors import Unavailable
from service.core.local_cache import LocalCache
from service.core.metrics import Metrics
from service.core.names import Names, names_of
from service.core.passwords import Passwords
from service.core.ports import (
    Batch,
    Database,
    FormCache,
    HalfPublisher,
    LoginAttempts,
    Publisher,
)
from service.core.revocation import GenerationCache, GenerationTable, Revocations
from service.core.settings import Settings
from service.core.shard_guard import ShardGuard
from service.filing.history import History, HistoryTables
from service.filing.mysql import FilingTables
from service.filing.progress import Progress, ProgressTables
from service.forms.group_commit import open_save_publisher
from service.forms.save import Forms
from service.forms.submit import Submissions
from service.forms.transactions import committed
from service.forms.windows import BatchWindows
from service.hot.aggregate import Aggregator, HotStore, HotTotals
from service.hot.broker import HotBroker
from service.hot.events import HotSink, open_hot_events
from service.hot.mysql import HotTables
from service.hot.pins import HotPins, PinTarget
from service.hot.redis_buckets import HotBuckets
from service.http import keys
from service.http.app import Services, build_app
from service.http.endpoints.naive import NaiveForms, NaiveStore
from service.http.probes import Probes
from service.imports.jobs import JobTable
from service.imports.mysql import ImportJobs
from service.imports.pipeline import CandidateSink, ExamCache, Importer, Sinks, StaffSink
from service.schools.schools import Schools, SchoolTables
from service.storage.brokers import FormBroker, open_form_broker
from service.storage.mysql_db import connect_one
from service.storage.mysql_migrate import NaiveTable, check_shard_count
from service.storage.mysql_parts import AnyDatabase, open_database
from service.storage.rabbit import RabbitBroker, open_broker
from service.storage.rabbit_status import message_counts
from service.storage.redis_cache import RedisCache, open_cache

log = logging.getLogger(__name__)
# How long `volreg import` and `volreg batch` wait for the broker before announcing changes.
_BROADCAST_WAIT_S = 3.0
_BROKER_WAIT_S = 5.0


class StaffPorts(StaffStore, SchoolTables, StaffSink, GenerationTable, Protocol):
    """The staff table as logins, the teachers' views, the importer and revocation use it."""


class OpenBroadcast(Protocol):
    """Enter to listen for catalogue invalidations (``on_keys``; ``on_reset`` after a
    reconnect may have lost some) and to publish them."""

    def __call__(
        self,
        on_keys: Callable[[list[str]], None] | None,
        on_reset: Callable[[], None] | None,
    ) -> AbstractAsyncContextManager[Invalidations]: ...


class OpenPublisher(Protocol):
    """Enter to get the publisher saves go through (the app's metrics count its work)."""

    def __call__(self, metrics: Metrics) -> AbstractAsyncContextManager[Publisher]: ...


class OpenNaiveStore(Protocol):
    """Enter to get the naive benchmark route's store, None unless ``bench_naive``."""

    def __call__(self) -> AbstractAsyncContextManager[NaiveStore | None]: ...


@asynccontextmanager
async def open_naive_store(settings: Settings) -> AsyncIterator[NaiveTable | None]:
    """The naive route's own MySQL pool, sized to the load's concurrency (a naive design
    would size it so: sharing the API's small pool would understate it), with its table
    created (by the schema's owner) before any load arrives. None unless ``bench_naive``."""
    if not settings.bench_naive:
        yield None
        return
    sized = dataclasses.replace(settings, mysql_pool_size=settings.bench_naive_pool_size)
    async with connect_one(sized) as db:
        store = NaiveTable(db, sized)
        try:
            await store.create_naive_table()
        except Unavailable as exc:  # created on first save instead
            log.warning("naive benchmark table not created yet: %s", exc)
        yield store


class OpenHotKeys(Protocol):
    """Enter to hear the hot keys the aggregator pushes (``on_keys``)."""

    def __call__(
        self, on_keys: Callable[[list[str]], None]
    ) -> AbstractAsyncContextManager[object]: ...


class FilingPorts(ProgressTables, HistoryTables, Protocol):
    """Progress counters and the save history."""


@dataclass(frozen=True, slots=True)
class Adapters:
    """Every port the API's use cases depend on: adapters on the servers (``open_adapters``)
    or in-memory fakes (``service.main.fakes``)."""

    form_cache: FormCache
    open_publisher: OpenPublisher
    database: Database
    open_naive_store: OpenNaiveStore
    login_attempts: LoginAttempts
    token_generations: GenerationCache
    staff: StaffPorts
    catalogue_tables: CatalogueTables
    catalogue_copies: CatalogueCopies
    open_broadcast: OpenBroadcast
    candidates: CandidateSink
    exams: ExamCache
    import_jobs: JobTable
    probes: Mapping[str, Callable[[], Awaitable[None]]]
    # Readiness watches these: a problem of the process's own connections, None while fine.
    machinery: Mapping[str, Callable[[], str | None]] = field(default_factory=dict)
    # Hot items, progress, history, the pipeline; without them those endpoints are not served.
    hot_sink: HotSink | None = None
    hot_store: HotStore | None = None
    hot_totals: HotTotals | None = None
    open_hot_keys: OpenHotKeys | None = None
    filing: FilingPorts | None = None
    queue_counts: QueueCounts | None = None
    last_reconcile: LastReconcile | None = None
    # RocketMQ's transactional half messages, when saves go that way (rocketmq_transactions).
    halves: HalfPublisher | None = None


@asynccontextmanager
async def _open_servers(
    settings: Settings, names: Names
) -> AsyncIterator[tuple[RedisCache, AnyDatabase, RabbitBroker]]:
    """None of them waits for its server: a process starts (not ready) while one is down."""
    async with (
        open_cache(settings, names) as cache,
        open_database(settings) as db,
        open_broker(settings, names) as broker,
    ):
        yield cache, db, broker


@asynccontextmanager
async def open_adapters(settings: Settings, names: Names) -> AsyncIterator[Adapters]:
    """The API's adapters on Redis, MySQL (one database or shards) and the broker. Saves go
    to the form broker ``VOLREG_BROKER`` names; the broadcast stays on RabbitMQ."""
    async with (
        _open_servers(settings, names) as (cache, db, broker),
        open_form_broker(
            settings, names, broker, lambda record: committed(cache, db, record)
        ) as forms_broker,
    ):

        def broadcast(
            on_keys: Callable[[list[str]], None] | None,
            on_reset: Callable[[], None] | None,
        ) -> AbstractAsyncContextManager[Invalidations]:
            return open_broadcast(broker, names, settings.broker_timeout_s, on_keys, on_reset)

        def hot_keys(on_keys: Callable[[list[str]], None]) -> AbstractAsyncContextManager[object]:
            return open_broadcast(
                broker, names, settings.broker_timeout_s, on_keys, exchange=names.hot_keys_exchange
            )

        yield Adapters(
            form_cache=cache,
            # Group commit (VOLREG_GROUP_COMMIT) on either broker; transactional saves go as
            # half messages of one save each instead (``halves``).
            open_publisher=lambda metrics: open_save_publisher(
                settings, forms_broker, names, metrics
            ),
            database=db,
            open_naive_store=lambda: open_naive_store(settings),
            login_attempts=cache,
            token_generations=cache,
            staff=StaffTables(db),
            catalogue_tables=catalogue_mysql.CatalogueTables(db),
            catalogue_copies=cache,
            open_broadcast=broadcast,
            candidates=db,
            exams=cache,
            import_jobs=ImportJobs(db),
            probes={"redis": cache.ping, "broker": forms_broker.ping, "mysql": db.ping},
            machinery={"broker_link": broker.connector_problem},
            hot_sink=HotBroker(broker, names, settings),
            hot_store=HotBuckets(cache.client, names, settings),
            hot_totals=HotTables(db),
            open_hot_keys=hot_keys,
            filing=FilingTables(db),
            queue_counts=lambda: message_counts(
                broker,
                [*names.all_queues, names.dead_letter_queue, names.hot_queue],
                settings.broker_timeout_s,
            ),
            last_reconcile=ConsoleTables(db).last_reconcile,
            halves=_halves(settings, forms_broker),
        )


def _halves(settings: Settings, broker: FormBroker) -> HalfPublisher | None:
    if not settings.rocketmq_transactions:
        return None
    from service.storage.rocket import RocketBroker

    assert isinstance(broker, RocketBroker)  # settings_rules: transactions need RocketMQ
    return broker


@asynccontextmanager
async def open_durable(
    settings: Settings, names: Names
) -> AsyncIterator[tuple[AnyDatabase, FormBroker]]:
    """The consumer's adapters: MySQL and the form broker (it never touches Redis)."""
    async with open_database(settings) as db, open_form_broker(settings, names) as broker:
        yield db, broker


def create_app(settings: Settings, adapters: Adapters | None = None) -> web.Application:
    """The API. Without ``adapters`` it opens its own on start-up and closes them on exit;
    given ones are used as they are and left open."""
    names = names_of(settings)

    @asynccontextmanager
    async def services(app: web.Application) -> AsyncIterator[Services]:
        async with AsyncExitStack() as stack:
            machinery: dict[str, Callable[[], str | None]] = {}
            if adapters is None:
                # The shard count recorded at migrate time, before anything is served (or,
                # MySQL being down, as soon as it answers: not ready on a mismatch).
                guard = ShardGuard(lambda: check_shard_count(settings), settings.probe_interval_s)
                await stack.enter_async_context(guard.guarding())
                machinery["shards"] = lambda: guard.problem
                opened = await stack.enter_async_context(open_adapters(settings, names))
            else:
                opened = adapters
            machinery.update(opened.machinery)
            services = await stack.enter_async_context(_services(app, settings, opened))
            yield dataclasses.replace(services, machinery=machinery)

    return build_app(settings, names, services)


def _stage_timer(app: web.Application) -> Callable[[str, float], None]:
    histogram = app[keys.METRICS].save_stage
    children = {step: histogram.labels(step) for step in ("stage", "publish", "commit")}
    return lambda step, seconds: children[step].observe(seconds)


@asynccontextmanager
async def _services(
    app: web.Application, settings: Settings, adapters: Adapters
) -> AsyncIterator[Services]:
    a = adapters
    local: LocalCache[Any] = LocalCache(settings.catalogue_local_entries, settings.catalogue_ttl_s)
    exams: LocalCache[dict[str, Any] | None] = LocalCache(
        settings.exam_local_entries, settings.exam_local_ttl_s
    )

    def on_keys(changed: list[str]) -> None:
        for key in changed:
            local.invalidate(key)
            exams.invalidate(key)

    def on_reset() -> None:
        local.invalidate_all()
        exams.invalidate_all()

    registry = app[keys.METRICS].registry
    generations: LocalCache[int] = LocalCache(
        settings.exam_local_entries, settings.token_generation_local_ttl_s
    )
    app[keys.METRICS].caches.update(
        {"catalogue": local.stats, "exams": exams.stats, "token_generations": generations.stats}
    )
    hashing = HashQueue(settings.login_hash_workers, settings.login_hash_queue)
    async with AsyncExitStack() as stack:
        broadcast = await stack.enter_async_context(a.open_broadcast(on_keys, on_reset))
        publisher = await stack.enter_async_context(a.open_publisher(app[keys.METRICS]))
        naive_store = await stack.enter_async_context(a.open_naive_store())
        await stack.enter_async_context(hashing)
        catalogue = Catalogue(
            a.catalogue_tables, a.catalogue_copies, local, settings.catalogue_redis_ttl_s, broadcast
        )
        # The catalogue's multi-level cache holds the batches: no second cache in front.
        batches = BatchWindows(catalogue, 0.0, on_miss=catalogue.reload_batches)
        passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib)
        limits = LoginLimits(
            settings.login_failures_limit,
            settings.login_client_failures_limit,
            settings.login_failures_window_s,
            settings.login_global_limit,
            settings.login_global_window_s,
        )
        sinks = Sinks(a.candidates, a.exams, a.staff, a.import_jobs, broadcast.publish)
        accounts = Accounts(
            a.database,
            a.form_cache,
            passwords,
            app[keys.SIGNER],
            settings.token_ttl_s,
            staff=a.staff,
            exams=exams,
            guard=LoginGuard(a.login_attempts, limits),
            hashing=hashing,
        )
        hot_events = await stack.enter_async_context(
            open_hot_events(a.hot_sink, registry, settings.hot_flush_s, settings.hot_buffer_entries)
        )
        if a.open_hot_keys is not None:
            pins = _hot_pins(settings, catalogue, local, accounts, exams, registry)
            stack.push_async_callback(pins.close)
            await stack.enter_async_context(a.open_hot_keys(pins.on_keys))
        hot_view = None
        if a.hot_store is not None and a.hot_totals is not None:
            hot_view = Aggregator(
                a.hot_store,
                a.hot_totals,
                None,
                settings.hot_key_threshold,
                settings.hot_key_ttl_s,
            )
        forms = Forms(
            a.form_cache,
            publisher,
            a.database,
            batches,
            catalogue,
            observe=_stage_timer(app),
            halves=a.halves,
        )
        yield Services(
            forms=forms,
            accounts=accounts,
            catalogue=catalogue,
            schools=Schools(a.staff, a.database),
            importer=Importer(sinks, settings),
            import_jobs=a.import_jobs,
            probes=Probes(
                dict(a.probes),
                timeout_s=min(settings.redis_timeout_s, settings.mysql_timeout_s),
            ),
            revocations=Revocations(
                a.database,
                a.staff,
                a.token_generations,
                generations,
                settings.token_generation_redis_ttl_s,
            ),
            naive=None if naive_store is None else NaiveForms(naive_store, batches, catalogue),
            hot_events=hot_events,
            hot_view=hot_view,
            progress=None if a.filing is None else Progress(a.filing),
            history=None if a.filing is None else History(a.filing),
            submissions=Submissions(forms, a.form_cache, batches),
            pipeline=_pipeline(settings, a),
        )


def _pipeline(settings: Settings, a: Adapters) -> Pipeline | None:
    if a.queue_counts is None or a.last_reconcile is None:
        return None
    names = names_of(settings)
    return Pipeline(
        names.all_queues, names.dead_letter_queue, names.hot_queue, a.queue_counts, a.last_reconcile
    )


def _hot_pins(
    settings: Settings,
    catalogue: Catalogue,
    local: LocalCache[Any],
    accounts: Accounts,
    exams: LocalCache[dict[str, Any] | None],
    registry: CollectorRegistry,
) -> HotPins:
    """Which pushed hot keys this process can hold: catalogue entries and exam results (never
    forms, whose reads must see the newest version)."""

    async def institution(key: str) -> object:
        return await catalogue.institution(key.partition(":")[2])

    async def listing(key: str) -> object:
        return await (catalogue.institutions() if key == KEY_INSTITUTIONS else catalogue.batches())

    async def exam(key: str) -> object:
        return await accounts.exam(key.partition(":")[2])

    targets = [
        PinTarget(institution_key(""), institution, local.hold),
        PinTarget(KEY_INSTITUTIONS, listing, local.hold),
        PinTarget(KEY_BATCHES, listing, local.hold),
        PinTarget("exam:", exam, exams.hold),
    ]
    return HotPins(targets, settings.hot_key_ttl_s, registry)


@asynccontextmanager
async def open_hot_aggregator(
    settings: Settings, names: Names
) -> AsyncIterator[tuple[Aggregator, HotBroker, RabbitBroker]]:
    """``volreg hot``: the aggregator on Redis, MySQL and the broker, pushing hot keys over
    their fanout."""
    async with (
        open_cache(settings, names) as cache,
        open_database(settings) as db,
        open_broker(settings, names) as broker,
        open_broadcast(
            broker, names, settings.broker_timeout_s, exchange=names.hot_keys_exchange
        ) as push,
    ):
        aggregator = Aggregator(
            HotBuckets(cache.client, names, settings),
            HotTables(db),
            push,
            settings.hot_key_threshold,
            settings.hot_key_ttl_s,
        )
        yield aggregator, HotBroker(broker, names, settings), broker


@asynccontextmanager
async def open_import_sinks(settings: Settings, names: Names) -> AsyncIterator[Sinks]:
    """``volreg import``: the importer's sinks, announcing changed keys to API processes."""
    async with (
        _open_servers(settings, names) as (cache, db, broker),
        open_broadcast(broker, names, settings.broker_timeout_s) as broadcast,
    ):

        async def announce(changed: list[str]) -> None:
            try:
                await broadcast.wait_attached(_BROADCAST_WAIT_S)
            except TimeoutError:
                raise Unavailable("broker not reachable") from None
            await broadcast.publish(changed)

        yield Sinks(db, cache, StaffTables(db), ImportJobs(db), announce)


async def create_staff_account(
    settings: Settings, username: str, role: str, school: str, password: str
) -> None:
    """``volreg admin``; raises ValueError for bad values."""
    passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib)
    async with open_database(settings) as db:
        await create_account(StaffTables(db), passwords, username, role, school, password)


async def save_batch(settings: Settings, batch: Batch) -> None:
    """``volreg batch``: write the batch, then refresh the Redis copies and tell the API
    processes, as an admin's PUT does."""
    async with open_database(settings) as db:
        await db.upsert_batch(batch)
        await publish_keys(settings, names_of(settings), db, [KEY_BATCHES])


async def publish_keys(
    settings: Settings, names: Names, db: AnyDatabase, changed: list[str]
) -> None:
    """Publish catalogue changes made outside the API: refresh the Redis copies of
    ``changed`` and broadcast the invalidation."""
    async with (
        open_cache(settings, names) as cache,
        open_broker(settings, names) as broker,
        open_broadcast(broker, names, settings.broker_timeout_s) as broadcast,
    ):
        try:
            await broadcast.wait_attached(_BROKER_WAIT_S)
        except TimeoutError:
            log.warning("broker not reachable: API processes see the change within their TTL")
        local: LocalCache[object] = LocalCache(1, 0.0)
        catalogue = Catalogue(
            catalogue_mysql.CatalogueTables(db),
            cache,
            local,
            settings.catalogue_redis_ttl_s,
            broadcast,
        )
        outcome = await catalogue.published(changed)
        if not all(outcome.values()):
            log.warning("catalogue change published partly: %s", outcome)
