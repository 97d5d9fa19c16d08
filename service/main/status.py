"""``volreg status``: one screen for an operator: the servers, the recorded shard count, the
queues, the last reconcile runs and the imports still running."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from service.core.errors import Unavailable, VolregError
from service.core.names import names_of
from service.core.settings import Settings
from service.core.settings_rules import SettingsError
from service.main.cli_help import masked
from service.storage.mysql_migrate import check_shard_count
from service.storage.mysql_parts import home_of, open_database
from service.storage.rabbit import open_broker
from service.storage.redis_cache import open_cache

_BROKER_WAIT_S = 5.0


async def _answer(check: Callable[[], Awaitable[object]], timeout_s: float) -> str:
    try:
        async with asyncio.timeout(timeout_s):
            await check()
    except (Unavailable, OSError, TimeoutError) as exc:
        return f"DOWN ({exc.__class__.__name__}: {exc})"[:120]
    return "ok"


async def status(settings: Settings) -> tuple[int, str]:
    """The screen, and 0 when every server answers (1 otherwise)."""
    names = names_of(settings)
    lines = [f"volreg status at {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"]
    ok = True
    async with (
        open_cache(settings, names) as cache,
        open_database(settings) as db,
        open_broker(settings, names) as broker,
    ):
        with_timeout = settings.broker_timeout_s
        with suppress(TimeoutError):  # a broker that is down is reported below
            await broker.wait_connected(_BROKER_WAIT_S)
        servers = {
            "redis": (cache.ping, masked("redis_url", settings.redis_url)),
            "broker": (broker.ping, masked("amqp_url", settings.amqp_url)),
            "mysql": (db.ping, masked("mysql_dsn", settings.mysql_shards or settings.mysql_dsn)),
        }
        lines.append("servers:")
        answers = {}
        for name, (check, where) in servers.items():
            answers[name] = await _answer(check, with_timeout)
            ok = ok and answers[name] == "ok"
            lines.append(f"  {name:<8} {answers[name]:<10} {where}")

        shards = f"shards {settings.shards}, queues {settings.queues}"
        if answers["mysql"] == "ok":
            try:
                await check_shard_count(settings)
                shards += " (as recorded by migrate)"
            except SettingsError as exc:
                ok = False
                shards += f" MISMATCH: {exc}"
            except Unavailable as exc:
                shards += f" (not checked: {exc})"
        lines.append(shards)

        lines.append("queues (ready messages; unacked deliveries not counted):")
        if answers["broker"] == "ok":
            try:
                depths = await broker.queue_depths([*names.all_queues, names.dead_letter_queue])
                dead = depths.pop(names.dead_letter_queue)
                lines += [f"  {queue:<32} {depth:>10,}" for queue, depth in depths.items()]
                lines.append(f"  {'total':<32} {sum(depths.values()):>10,}")
                lines.append(f"  {names.dead_letter_queue:<32} {dead:>10,}  (dead letters)")
            except Unavailable as exc:
                lines.append(f"  not read: {exc}")
        else:
            lines.append("  not read: the broker is down")
        lines.append("  lag: volreg_consumer_lag_seconds on each consumer's /metrics")

        if answers["mysql"] == "ok":
            home = home_of(db)
            lines += _runs(await _rows(home.fetch_all("status_reconcile_runs")))
            lines += _imports(await _rows(home.fetch_all("status_imports")))
    return (0 if ok else 1), "\n".join(lines)


async def _rows(query: Awaitable[Any]) -> list[Any] | str:
    try:
        return list(await query)
    except VolregError as exc:  # down, or a database `volreg migrate` has not seen
        return f"not read: {exc}"


def _runs(rows: list[Any] | str) -> list[str]:
    out = ["last reconcile runs:"]
    if isinstance(rows, str):
        return [*out, f"  {rows}"]
    if not rows:
        return [*out, "  none yet"]
    for mode, shard, outcome, started, ms, checked, drifted, rr, rm, unrepaired, grace, err in rows:
        where = "all shards" if shard is None else f"shard {shard}"
        out.append(
            f"  {started:%Y-%m-%d %H:%M:%S} {mode:<11} {where:<10} {outcome:<8} "
            f"{ms / 1000:.1f} s  checked {checked:,}, drifted {drifted:,}, repaired "
            f"{rr + rm:,}, unrepaired {unrepaired:,}, in grace {grace:,}"
            + (f"  error: {err}" if err else "")
        )
    return out


def _imports(rows: list[Any] | str) -> list[str]:
    out = ["imports running:"]
    if isinstance(rows, str):
        return [*out, f"  {rows}"]
    if not rows:
        return [*out, "  none"]
    for job, kind, source, done, imported, rejected, read, total, started in rows:
        share = f" ({read / total:.0%} of the file)" if total else ""
        out.append(
            f"  {job} {kind} from {source}: {done:,} rows ({imported:,} imported, "
            f"{rejected:,} rejected){share}, since {started:%Y-%m-%d %H:%M:%S}"
        )
    return out
