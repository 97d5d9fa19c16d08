"""Process entry points: the API server (one or several processes) and the consumer."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from functools import partial

import uvloop
from aiohttp import web
from prometheus_client.multiprocess import mark_process_dead

from service.core.errors import Unavailable
from service.core.logs import configure
from service.core.metrics import MULTIPROC_ENV, ConsumerMetrics
from service.core.names import names_of
from service.core.ports import Inbound
from service.core.settings import Settings
from service.core.shard_guard import ShardGuard
from service.filing.mysql import FilingTables
from service.forms.consumer import FormWriter
from service.hot.aggregate import Delivery
from service.http.consumer_app import create_consumer_app, sampling, serving
from service.main.wiring import create_app, open_durable, open_hot_aggregator
from service.storage.mysql_migrate import check_shard_count
from service.storage.rabbit import RabbitBroker

log = logging.getLogger(__name__)
# Longer than a save can take (three network steps under their timeouts).
SHUTDOWN_GRACE_S = 15.0
_HOT_PREFETCH = 50


def _serve_one(settings: Settings, reuse_port: bool) -> None:
    configure(settings.log_level)
    uvloop.install()
    web.run_app(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        reuse_port=reuse_port,
        shutdown_timeout=SHUTDOWN_GRACE_S,
        access_log=None,
        print=None,
        handle_signals=True,
    )


def serve(settings: Settings, workers: int) -> int:
    """``workers`` processes share the port with SO_REUSEPORT, one event loop each. SIGTERM
    stops accepting, lets in-flight saves finish (up to the grace period), then exits.
    Returns the exit code: a worker's failure, 0 when all stopped cleanly."""
    if workers <= 1:
        _serve_one(settings, reuse_port=False)
        return 0
    # A wrong shard count ends here with one message, not with every worker's traceback.
    guard = ShardGuard(lambda: check_shard_count(settings), settings.probe_interval_s)
    asyncio.run(guard.first())
    with _multiprocess_metrics():
        return _serve_workers(settings, workers)


@contextmanager
def _multiprocess_metrics() -> Iterator[None]:
    """Workers write their metrics to files in one directory and every worker's /metrics
    sums them (prometheus_client's multiprocess mode, chosen by the environment variable at
    import, hence before the workers start). A directory given by the deployment is used
    as it is (it must be emptied between runs); otherwise a fresh one, removed at the end."""
    given = os.environ.get(MULTIPROC_ENV)
    directory = given or tempfile.mkdtemp(prefix="volreg-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield
    finally:
        if not given:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(directory, ignore_errors=True)


def _serve_workers(settings: Settings, workers: int) -> int:
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_serve_one, args=(settings, True), name=f"volreg-api-{i}")
        for i in range(workers)
    ]
    for p in procs:
        p.start()

    def forward(_signum: int, _frame: object) -> None:
        for p in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: each worker drains its in-flight requests

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for p in procs:
        p.join()
        if p.pid is not None:
            mark_process_dead(p.pid)  # type: ignore[no-untyped-call]  # its live gauges go
    codes = [p.exitcode for p in procs]
    return next((c for c in codes if c not in (0, -signal.SIGTERM, None)), 0)


async def _consume(settings: Settings) -> None:
    names = names_of(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    inbox: asyncio.Queue[Inbound] = asyncio.Queue()
    # Nothing is consumed before the shard count is known to be right (SettingsError ends
    # the process): a consumer holds no state, so waiting for MySQL here loses nothing.
    guard = ShardGuard(lambda: check_shard_count(settings), settings.probe_interval_s)
    while not await guard.first():
        try:
            await asyncio.wait_for(stop.wait(), timeout=settings.probe_interval_s)
            return
        except TimeoutError:
            continue
    async with AsyncExitStack() as stack:
        db, broker = await stack.enter_async_context(open_durable(settings, names))
        metrics = ConsumerMetrics()
        writer = FormWriter(db, settings, metrics, journal=FilingTables(db))
        consuming = asyncio.Event()

        async def sample_queues() -> None:
            assert isinstance(broker, RabbitBroker)
            depths = await broker.queue_depths([*names.all_queues, names.dead_letter_queue])
            metrics.dead_letter_messages.set(depths.pop(names.dead_letter_queue))
            for queue, depth in depths.items():
                metrics.queue_messages.labels(queue).set(depth)

        app = create_consumer_app(metrics, consuming, settings.metrics_token)
        await stack.enter_async_context(
            serving(app, settings.http_host, settings.consumer_http_port)
        )
        if isinstance(broker, RabbitBroker):  # RocketMQ's backlog is not sampled (yet)
            await stack.enter_async_context(
                sampling(settings.consumer_stats_interval_s, sample_queues, "queue-depths")
            )
        while not stop.is_set():
            try:
                await broker.wait_connected(timeout=1.0)
                break
            except TimeoutError:
                continue
        if not stop.is_set():
            await broker.consume(partial(writer.receive, inbox))
            consuming.set()
            log.info("consuming from %s (shard groups: %d)", settings.broker, names.queues)
        # On stop the batch in hand is written and acked; whatever else was prefetched is
        # unacked, so the broker redelivers it (harmless: upserts are version-guarded).
        await writer.run(inbox, stop)
    log.info("consumer stopped")


def consume(settings: Settings) -> None:
    configure(settings.log_level)
    uvloop.install()
    asyncio.run(_consume(settings))


async def _aggregate_hot(settings: Settings) -> None:
    names = names_of(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    inbox: asyncio.Queue[Delivery] = asyncio.Queue()
    async with open_hot_aggregator(settings, names) as (aggregator, hot_broker, broker):
        while not stop.is_set():
            try:
                await aggregator.restore()  # Redis lost its buckets: rebuilt from MySQL
                await broker.wait_connected(timeout=1.0)
                await hot_broker.consume_hot(inbox.put, _HOT_PREFETCH)
                break
            except (TimeoutError, Unavailable) as exc:
                log.warning("hot items: waiting for the servers: %s", exc)
                await asyncio.sleep(1.0)
        log.info("aggregating hot items from %s", names.hot_queue)
        await aggregator.run(inbox, stop, settings.hot_push_interval_s)
    log.info("hot-item aggregator stopped")


def aggregate_hot(settings: Settings) -> None:
    """``volreg hot``."""
    configure(settings.log_level)
    uvloop.install()
    asyncio.run(_aggregate_hot(settings))
