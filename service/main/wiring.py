"""The one place that opens adapters and builds the use cases on them: the API (``create_app``),
the consumer, ``volreg import``, ``volreg admin`` and ``volreg batch``.

Each feature depends on its ports only; here they meet the adapters of ``service.storage``
and the features' own tables. Tests pass their own ``Adapters`` to ``create_app``."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from service.accounts.guard import LoginGuard
from service.accounts.login import Accounts
from service.accounts.mysql import StaffTables
from service.accounts.staff import create_account
from service.catalogue.broadcast import open_broadcast
from service.catalogue.catalogue import KEY_BATCHES, Catalogue
from service.catalogue.mysql import CatalogueTables
from service.core.errors import Unavailable
from service.core.local_cache import LocalCache
from service.core.names import Names, names_of
from service.core.passwords import Passwords
from service.core.ports import Batch
from service.core.settings import Settings
from service.forms.group_commit import open_save_publisher
from service.forms.save import Forms
from service.forms.windows import BatchWindows
from service.http import keys
from service.http.app import Services, build_app
from service.http.endpoints.naive import NaiveForms
from service.http.probes import Probes
from service.imports.mysql import ImportJobs
from service.imports.pipeline import Importer, Sinks
from service.schools.schools import Schools
from service.storage.mysql_db import MySQLDatabase, connect_one
from service.storage.mysql_parts import AnyDatabase, open_database
from service.storage.rabbit import RabbitBroker, open_broker
from service.storage.redis_cache import RedisCache, open_cache

log = logging.getLogger(__name__)
# How long `volreg import` and `volreg batch` wait for the broker before announcing changes.
_BROADCAST_WAIT_S = 3.0
_BROKER_WAIT_S = 5.0


@asynccontextmanager
async def open_naive_store(settings: Settings) -> AsyncIterator[MySQLDatabase | None]:
    """The naive route's own MySQL pool, sized to the load's concurrency (a naive design
    would size it so: sharing the API's small pool would understate it), with its table
    created before any load arrives. None unless ``bench_naive`` is set."""
    if not settings.bench_naive:
        yield None
        return
    sized = dataclasses.replace(settings, mysql_pool_size=settings.bench_naive_pool_size)
    async with connect_one(sized) as db:
        try:
            await db.create_naive_table()
        except Unavailable as exc:  # created on first save instead
            log.warning("naive benchmark table not created yet: %s", exc)
        yield db


@dataclass(frozen=True, slots=True)
class Adapters:
    """What the API runs on: Redis, MySQL (one database or shards) and the broker."""

    cache: RedisCache
    db: AnyDatabase
    broker: RabbitBroker


@asynccontextmanager
async def open_adapters(settings: Settings, names: Names) -> AsyncIterator[Adapters]:
    """None of them waits for its server: a process starts (not ready) while one is down."""
    async with (
        open_cache(settings, names) as cache,
        open_database(settings) as db,
        open_broker(settings, names) as broker,
    ):
        yield Adapters(cache, db, broker)


@asynccontextmanager
async def open_durable(
    settings: Settings, names: Names
) -> AsyncIterator[tuple[AnyDatabase, RabbitBroker]]:
    """The consumer's adapters: MySQL and the broker (it never touches Redis)."""
    async with open_database(settings) as db, open_broker(settings, names) as broker:
        yield db, broker


def create_app(settings: Settings, adapters: Adapters | None = None) -> web.Application:
    """The API. Without ``adapters`` it opens its own on start-up and closes them on exit;
    given ones are used as they are and left open."""
    names = names_of(settings)

    @asynccontextmanager
    async def services(app: web.Application) -> AsyncIterator[Services]:
        if settings.uses_dev_secret:
            log.warning("VOLREG_TOKEN_SECRET is not set: tokens use the development secret")
        async with AsyncExitStack() as stack:
            if adapters is None:
                opened = await stack.enter_async_context(open_adapters(settings, names))
            else:
                opened = adapters
            yield await stack.enter_async_context(_services(app, settings, names, opened))

    return build_app(settings, names, services)


@asynccontextmanager
async def _services(
    app: web.Application, settings: Settings, names: Names, adapters: Adapters
) -> AsyncIterator[Services]:
    cache, db, broker = adapters.cache, adapters.db, adapters.broker
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

    async with (
        open_broadcast(broker, names, settings.broker_timeout_s, on_keys, on_reset) as broadcast,
        open_save_publisher(settings, broker, names, app[keys.METRICS]) as publisher,
        open_naive_store(settings) as naive_db,
    ):
        catalogue = Catalogue(
            CatalogueTables(db), cache, local, settings.catalogue_redis_ttl_s, broadcast
        )
        staff = StaffTables(db)
        jobs = ImportJobs(db)
        # The catalogue's multi-level cache holds the batches: no second cache in front.
        batches = BatchWindows(catalogue, 0.0, on_miss=catalogue.reload_batches)
        passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib)
        yield Services(
            forms=Forms(cache, publisher, db, batches, catalogue),
            accounts=Accounts(
                db,
                cache,
                passwords,
                app[keys.SIGNER],
                settings.token_ttl_s,
                staff=staff,
                exams=exams,
                guard=LoginGuard(
                    cache, settings.login_failures_limit, settings.login_failures_window_s
                ),
            ),
            catalogue=catalogue,
            schools=Schools(staff, db),
            importer=Importer(Sinks(db, cache, staff, jobs, broadcast.publish), settings),
            import_jobs=jobs,
            probes=Probes(
                {"redis": cache.ping, "broker": broker.ping, "mysql": db.ping},
                timeout_s=min(settings.redis_timeout_s, settings.mysql_timeout_s),
            ),
            naive=None if naive_db is None else NaiveForms(naive_db, batches, catalogue),
        )


@asynccontextmanager
async def open_import_sinks(settings: Settings, names: Names) -> AsyncIterator[Sinks]:
    """``volreg import``: the importer's sinks, announcing changed keys to API processes."""
    async with (
        open_adapters(settings, names) as adapters,
        open_broadcast(adapters.broker, names, settings.broker_timeout_s) as broadcast,
    ):

        async def announce(changed: list[str]) -> None:
            try:
                await broadcast.wait_attached(_BROADCAST_WAIT_S)
            except TimeoutError:
                raise Unavailable("broker not reachable") from None
            await broadcast.publish(changed)

        db = adapters.db
        yield Sinks(db, adapters.cache, StaffTables(db), ImportJobs(db), announce)


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
            CatalogueTables(db), cache, local, settings.catalogue_redis_ttl_s, broadcast
        )
        outcome = await catalogue.published(changed)
        if not all(outcome.values()):
            log.warning("catalogue change published partly: %s", outcome)
