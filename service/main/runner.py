"""Process entry points: the API server (one or several processes) and the consumer."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
from contextlib import AsyncExitStack

import uvloop
from aiohttp import web

from service.core.logs import configure
from service.core.metrics import Metrics
from service.core.names import names_of
from service.core.ports import Inbound
from service.core.settings import Settings
from service.forms.consumer import FormWriter
from service.main.wiring import create_app, open_durable

log = logging.getLogger(__name__)
# Longer than a save can take (three network steps under their timeouts).
SHUTDOWN_GRACE_S = 15.0


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


def serve(settings: Settings, workers: int) -> None:
    """``workers`` processes share the port with SO_REUSEPORT, one event loop each. SIGTERM
    stops accepting, lets in-flight saves finish (up to the grace period), then exits."""
    if workers <= 1:
        _serve_one(settings, reuse_port=False)
        return
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


async def _consume(settings: Settings) -> None:
    names = names_of(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    inbox: asyncio.Queue[Inbound] = asyncio.Queue()
    async with AsyncExitStack() as stack:
        db, broker = await stack.enter_async_context(open_durable(settings, names))
        writer = FormWriter(db, settings, Metrics())
        while not stop.is_set():
            try:
                await broker.wait_connected(timeout=1.0)
                break
            except TimeoutError:
                continue
        if not stop.is_set():
            await broker.consume(inbox.put)
            log.info("consuming from %s (shard groups: %d)", settings.broker, names.queues)
        # On stop the batch in hand is written and acked; whatever else was prefetched is
        # unacked, so the broker redelivers it (harmless: upserts are version-guarded).
        await writer.run(inbox, stop)
    log.info("consumer stopped")


def consume(settings: Settings) -> None:
    configure(settings.log_level)
    uvloop.install()
    asyncio.run(_consume(settings))
