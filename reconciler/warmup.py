"""Warm-up after Redis lost its data: reload every form from MySQL in pipelined batches.

Each form goes through the same compare-and-set as a save's commit, so a warm-up running
while candidates save never replaces a newer version.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from schemas.records import FormRecord


class FormSource(Protocol):
    def all_forms(self, page: int) -> AsyncIterator[list[FormRecord]]: ...


class FormSink(Protocol):
    async def fill_many(self, records: Sequence[FormRecord]) -> int: ...


@dataclass(slots=True)
class WarmupReport:
    forms: int = 0
    applied: int = 0  # the rest were already there, or newer (saved meanwhile)
    seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.forms / self.seconds if self.seconds else 0.0


async def warm_up(
    source: FormSource,
    sink: FormSink,
    page: int,
    progress: Callable[[int], object],
    writers: int = 2,
) -> WarmupReport:
    """Read pages from MySQL while ``writers`` tasks pipeline earlier pages into Redis."""
    report = WarmupReport()
    started = time.monotonic()
    pages: asyncio.Queue[list[FormRecord] | None] = asyncio.Queue(maxsize=writers * 2)

    async def read() -> None:
        async for records in source.all_forms(page):
            await pages.put(records)
        for _ in range(writers):
            await pages.put(None)

    async def write() -> None:
        while (records := await pages.get()) is not None:
            applied = await sink.fill_many(records)  # not "+= await": writers run concurrently
            report.applied += applied
            report.forms += len(records)
            progress(len(records))

    try:
        # A failing task cancels the others (no reader left blocked on a full queue).
        async with asyncio.TaskGroup() as group:
            group.create_task(read(), name="warmup-reader")
            for i in range(writers):
                group.create_task(write(), name=f"warmup-writer-{i}")
    except BaseExceptionGroup as errors:
        raise errors.exceptions[0] from None
    report.seconds = time.monotonic() - started
    return report
