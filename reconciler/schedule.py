"""``volreg reconcile``: incremental runs every interval and full runs now and then, scheduled
by APScheduler; every process takes the same Redis lock, so one run happens at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import datetime

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from reconciler.http import create_status_app
from reconciler.metrics import ReconcileMetrics
from reconciler.model import MODE_FULL, MODE_INCREMENTAL
from reconciler.mysql_archive import FormArchive
from reconciler.redis_index import FormIndex
from reconciler.run import LockBusy, Reconciler
from reconciler.wiring import open_sides
from service.core.errors import Unavailable
from service.core.local_cache import LocalCache
from service.core.revocation import Revocations
from service.core.settings import Settings
from service.core.token_keys import previous_secrets
from service.core.tokens import TokenSigner

log = logging.getLogger(__name__)


class Schedule:
    def __init__(self, reconciler: Reconciler) -> None:
        self._reconciler = reconciler
        self._running: set[asyncio.Task[object]] = set()

    async def job(self, mode: str) -> None:
        # APScheduler starts this as a task of its own: name it and track it for shutdown.
        task = asyncio.current_task()
        assert task is not None
        task.set_name(f"reconcile-{mode}")
        self._running.add(task)
        try:
            await self._reconciler.run(mode)
        except LockBusy:
            log.info("reconcile %s run skipped: another run holds the lock", mode)
        except Unavailable as exc:  # Redis down: no lock to take; the next run tries again
            log.warning("reconcile %s run skipped: %s", mode, exc)
        finally:
            self._running.discard(task)

    async def stop(self) -> None:
        """Cancel a run in progress: it is not recorded, the repairs it made stay."""
        for task in list(self._running):
            task.cancel()
        for task in list(self._running):
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def serve_forever(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    metrics = ReconcileMetrics()
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # a line per job run otherwise
    async with open_sides(settings) as (redis, mysql):
        reconciler = Reconciler(redis, mysql, settings, metrics)
        schedule = Schedule(reconciler)
        runner = web.AppRunner(
            create_status_app(
                reconciler,
                metrics,
                _signer(settings),
                _revocations(settings, redis, mysql),
                settings.metrics_token,
            ),
            access_log=None,
        )
        await runner.setup()
        site = web.TCPSite(runner, settings.http_host, settings.reconcile_http_port)
        await site.start()
        scheduler = AsyncIOScheduler()
        common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        scheduler.add_job(
            schedule.job,
            "interval",
            args=[MODE_INCREMENTAL],
            seconds=settings.reconcile_interval_s,
            next_run_time=datetime.now(),
            **common,
        )
        scheduler.add_job(
            schedule.job,
            "interval",
            args=[MODE_FULL],
            seconds=settings.reconcile_full_interval_s,
            **common,
        )
        scheduler.start()
        log.info(
            "reconciler up: status on http://%s:%d/status",
            settings.http_host,
            settings.reconcile_http_port,
        )
        try:
            await stop.wait()
        finally:
            scheduler.shutdown(wait=False)
            await schedule.stop()
            await runner.cleanup()
    log.info("reconciler stopped")


def _revocations(settings: Settings, redis: FormIndex, mysql: FormArchive) -> Revocations:
    """Admin tokens' generations, as the API reads them: a per-process copy, then Redis,
    then MySQL on a miss."""
    return Revocations(
        None,
        mysql.staff_generations,
        redis,
        LocalCache(1024, settings.token_generation_local_ttl_s),
        settings.token_generation_redis_ttl_s,
    )


def _signer(settings: Settings) -> TokenSigner:
    return TokenSigner(settings.token_secret, previous_secrets(settings))
