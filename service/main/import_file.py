"""``volreg import FILE``: a bulk import from a local file, with a progress bar."""

from __future__ import annotations

import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path

from tqdm import tqdm

from service.core.errors import VolregError
from service.core.names import Names
from service.core.settings import Settings
from service.imports.jobs import JobRow, JobTable
from service.imports.pipeline import PHASE_READ, Importer, ImportFailed, Options
from service.imports.sources import FileSource
from service.main.wiring import open_import_sinks


async def import_file(
    settings: Settings, names: Names, path: Path, total: int, fresh: bool, job: str | None
) -> int:
    """Import ``path`` (``total`` bytes). Exit status: 0 all rows imported, 1 some rows
    rejected, 3 stopped (run again to resume)."""
    async with AsyncExitStack() as stack:
        sinks = await stack.enter_async_context(open_import_sinks(settings, names))
        fh = stack.enter_context(path.open("rb"))
        bars = stack.enter_context(_Bars(path.name, total))
        started = time.monotonic()
        options = Options(
            source_name=str(path.name),
            total_bytes=total,
            job_id=job,
            fresh=fresh,
            progress=bars.update,
        )
        try:
            finished = await Importer(sinks, settings).run(FileSource(fh), options)
        except ImportFailed as exc:
            bars.close()
            print(f"volreg import: {exc}", file=sys.stderr)
            return 3
        except VolregError as exc:  # refused before it started: wrong header, job conflict
            bars.close()
            print(f"volreg import: {exc}", file=sys.stderr)
            return 2
        bars.close()
        elapsed = time.monotonic() - started
        await _report(sinks.jobs, finished, elapsed)
        return 1 if finished.rejected else 0


class _Bars:
    """Two progress bars on the terminal: raw bytes read, then rows loaded."""

    def __init__(self, name: str, total: int) -> None:
        self._name = name
        self._bar = tqdm(total=total, desc=f"{name}: reading", unit="B", unit_scale=True)
        self._phase = PHASE_READ

    def __enter__(self) -> _Bars:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def update(self, phase: str, done: int, total: int | None) -> None:
        if phase != self._phase:
            self._bar.update(self._bar.total - self._bar.n)
            self._bar.close()
            self._bar = tqdm(total=total, desc=f"{self._name}: loading", unit="row")
            self._phase = phase
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        self._bar.close()


async def _report(jobs: JobTable, job: JobRow, elapsed: float) -> None:
    print(
        f"job {job.job_id} ({job.kind}): {job.rows_done} rows, imported {job.imported}, "
        f"rejected {job.rejected}"
        + (f" ({job.resumed_from} loaded by an earlier run)" if job.resumed_from else "")
        + f"; {elapsed:.1f}s, {job.rows_done / max(elapsed, 1e-9):.0f} rows/s"
    )
    for line, reason in await jobs.rejections(job.job_id, 0, 20):
        print(f"  line {line}: {reason}")
    if job.rejected > 20:
        print(f"  ... {job.rejected - 20} more: GET /api/v1/admin/imports/{job.job_id}")
