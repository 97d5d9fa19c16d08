"""``volreg import FILE``: a bulk import from a local file, with a progress bar."""

from __future__ import annotations

import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path

from tqdm import tqdm

from service.adapters.mysql_db import open_database
from service.adapters.mysql_imports import ImportJobs, JobRow
from service.adapters.mysql_staff import StaffTables
from service.adapters.rabbit_broadcast import open_broadcast
from service.adapters.redis_cache import open_cache
from service.errors import Unavailable, VolregError
from service.importer import FileSource, Importer, ImportFailed, Options, Sinks
from service.names import Names
from service.settings import Settings

_BROADCAST_WAIT_S = 3.0


async def import_file(
    settings: Settings, names: Names, path: Path, total: int, fresh: bool, job: str | None
) -> int:
    """Import ``path`` (``total`` bytes). Exit status: 0 all rows imported, 1 some rows
    rejected, 3 stopped (run again to resume)."""
    async with AsyncExitStack() as stack:
        db = await stack.enter_async_context(open_database(settings))
        cache = await stack.enter_async_context(open_cache(settings, names))
        broadcast = await stack.enter_async_context(open_broadcast(settings, names))

        async def announce(keys: list[str]) -> None:
            try:
                await broadcast.wait_connected(_BROADCAST_WAIT_S)
            except TimeoutError:
                raise Unavailable("broker not reachable") from None
            await broadcast.publish(keys)

        sinks = Sinks(db, cache, StaffTables(db), ImportJobs(db), announce)
        fh = stack.enter_context(path.open("rb"))
        # The bar counts raw bytes: known in advance (the rows of a .gz file are not).
        bar = stack.enter_context(
            tqdm(total=total, desc=path.name, unit="B", unit_scale=True, file=sys.stderr)
        )
        source = FileSource(fh)
        started = time.monotonic()
        options = Options(
            source_name=str(path.name),
            total_bytes=total,
            job_id=job,
            fresh=fresh,
            progress=lambda _rows: bar.update(fh.tell() - bar.n),
        )
        try:
            finished = await Importer(sinks, settings).run(source, options)
        except ImportFailed as exc:
            bar.close()
            print(f"volreg import: {exc}", file=sys.stderr)
            return 3
        except VolregError as exc:  # refused before it started: wrong header, job conflict
            bar.close()
            print(f"volreg import: {exc}", file=sys.stderr)
            return 2
        bar.update(total - bar.n)
        bar.close()
        elapsed = time.monotonic() - started
        await _report(sinks.jobs, finished, elapsed)
        return 1 if finished.rejected else 0


async def _report(jobs: ImportJobs, job: JobRow, elapsed: float) -> None:
    settled = job.rows_done - job.resumed_from
    print(
        f"job {job.job_id} ({job.kind}): {job.rows_done} rows, imported {job.imported}, "
        f"rejected {job.rejected}"
        + (f", resumed after row {job.resumed_from}" if job.resumed_from else "")
        + f"; {settled} rows in {elapsed:.1f}s ({settled / max(elapsed, 1e-9):.0f} rows/s)"
    )
    for line, reason in await jobs.rejections(job.job_id, 0, 20):
        print(f"  line {line}: {reason}")
    if job.rejected > 20:
        print(f"  ... {job.rejected - 20} more: GET /api/v1/admin/imports/{job.job_id}")
