"""``--in-process``: the save path's own cost without HTTP, redis-py's pool against the
multiplexed connection, alternating in one process so both see the same machine.

Steadier than req/s on a shared machine: it reports CPU per operation of this process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from loadtest.bodies import form_body, synthetic_catalogue
from loadtest.client import read_candidate_ids
from schemas.http import parse_form
from schemas.records import FormKey
from service.core.names import names_of
from service.core.settings import Settings
from service.forms.save import Forms
from service.forms.windows import BatchWindows
from service.storage.mysql_parts import open_database
from service.storage.rabbit import open_broker
from service.storage.redis_cache import open_cache

_CONCURRENCY = 64
_BROKER_WAIT_S = 10.0


async def _measure(ops: int, one: Callable[[int], Awaitable[Any]]) -> dict[str, float]:
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def guarded(i: int) -> None:
        async with gate:
            await one(i)

    await asyncio.gather(*(guarded(i) for i in range(min(ops, 200))))  # warm up
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(guarded(i) for i in range(ops)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"ops_per_s": round(ops / wall, 1), "cpu_ms_per_op": round(cpu * 1000 / ops, 4)}


async def _variant(
    settings: Settings, multiplex: bool, ids: list[str], batch: str, ops: int
) -> dict[str, dict[str, float]]:
    s = dataclasses.replace(settings, redis_multiplex=multiplex)
    names = names_of(s)
    body = parse_form(form_body(1, synthetic_catalogue()))
    async with (
        open_cache(s, names) as cache,
        open_database(s) as db,
        open_broker(s, names) as broker,
    ):
        await broker.wait_connected(_BROKER_WAIT_S)
        # No catalogue check: this measures Redis, the broker and the codec, nothing else.
        forms = Forms(cache, broker, db, BatchWindows(db, 60))

        def key(i: int) -> FormKey:
            return FormKey(ids[i % len(ids)], batch)

        async def stage(i: int) -> object:
            return await cache.stage(key(i), None, "inproc", floor=0)

        async def read(i: int) -> object:
            return await cache.read(key(i))

        async def save(i: int) -> object:
            return await forms.save(key(i), body, None, datetime.now())

        out = {"stage": await _measure(ops, stage), "read": await _measure(ops, read)}
        out["save"] = await _measure(max(1, ops // 4), save)
        return out


async def compare(
    settings: Settings, csv: Path, batch: str, ops: int, rounds: int
) -> dict[str, Any]:
    """``rounds`` of (pool, multiplexed), each round measuring stage, read and save."""
    ids = read_candidate_ids(csv, 200)
    results: dict[str, list[dict[str, dict[str, float]]]] = {"pool": [], "multiplexed": []}
    for _ in range(rounds):
        for name, multiplex in (("pool", False), ("multiplexed", True)):
            results[name].append(await _variant(settings, multiplex, ids, batch, ops))
    return {"concurrency": _CONCURRENCY, "ops": ops, "rounds": results}


def table(result: dict[str, Any]) -> list[str]:
    """Median over the rounds of each figure."""
    lines = [
        "| Redis client | stage CPU ms/op | read CPU ms/op | save CPU ms/op | saves/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, rounds in result["rounds"].items():

        def median(op: str, figure: str, rounds: list[Any] = rounds) -> float:
            values = sorted(r[op][figure] for r in rounds)
            return float(values[len(values) // 2])

        lines.append(
            f"| {name} | {median('stage', 'cpu_ms_per_op'):.3f} "
            f"| {median('read', 'cpu_ms_per_op'):.3f} | {median('save', 'cpu_ms_per_op'):.3f} "
            f"| {median('save', 'ops_per_s'):,.0f} |"
        )
    return lines
