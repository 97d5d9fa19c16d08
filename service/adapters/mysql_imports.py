"""Import jobs and their rejection reports in MySQL (on the home database)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.adapters.mysql_parts import home_of

_REASON_MAX = 255


@dataclass(frozen=True, slots=True)
class JobRow:
    job_id: str
    kind: str
    source: str
    fingerprint: str
    state: str
    total_bytes: int | None
    input_bytes: int
    byte_offset: int
    rows_done: int
    imported: int
    rejected: int
    resumed_from: int
    resumed_input_bytes: int
    runs: int
    error: str
    started_at: datetime
    run_started_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    now: datetime  # the database's clock when read, for rates

    def to_json(self) -> dict[str, Any]:
        """Status with the rate of this run and, while running, an estimate of the time left
        (from the share of the input read, when its size is known)."""
        end = self.now if self.state == "running" else self.updated_at
        elapsed = max((end - self.run_started_at).total_seconds(), 1e-3)
        rate = (self.rows_done - self.resumed_from) / elapsed
        eta = None
        read = self.input_bytes - self.resumed_input_bytes
        if self.state == "running" and self.total_bytes and read > 0:
            eta = round(max(self.total_bytes - self.input_bytes, 0) / (read / elapsed), 1)
        return {
            "job": self.job_id,
            "kind": self.kind,
            "source": self.source,
            "state": self.state,
            "rows_done": self.rows_done,
            "imported": self.imported,
            "rejected": self.rejected,
            "byte_offset": self.byte_offset,
            "input_bytes": self.input_bytes,
            "total_bytes": self.total_bytes,
            "resumed_from": self.resumed_from,
            "runs": self.runs,
            "rate_rows_per_s": round(rate, 1),
            "eta_s": eta,
            "error": self.error or None,
            "started_at": self.started_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Everything up to data row ``rows_done`` (byte ``byte_offset`` of the decompressed
    CSV) is settled; ``input_bytes`` of the (maybe compressed) input were read by then."""

    rows_done: int
    byte_offset: int
    input_bytes: int
    imported: int
    rejected: int


class ImportJobs:
    def __init__(self, db: Any) -> None:
        self._db = home_of(db)

    async def create(
        self, job_id: str, kind: str, source: str, fingerprint: str, total: int | None
    ) -> None:
        await self._db.execute("create_import_job", job_id, kind, source[:255], fingerprint, total)

    async def restart(self, job_id: str, total: int | None) -> None:
        await self._db.execute("restart_import_job", total, job_id)

    async def get(self, job_id: str) -> JobRow | None:
        row = await self._db.fetch_one("get_import_job", job_id)
        return None if row is None else JobRow(*row)

    async def unfinished(self, fingerprint: str, kind: str, total: int | None) -> str | None:
        row = await self._db.fetch_one("unfinished_import_job", fingerprint, kind, total)
        return None if row is None else str(row[0])

    async def checkpoint(self, job_id: str, at: Checkpoint) -> None:
        await self._db.execute(
            "checkpoint_import_job",
            at.rows_done,
            at.byte_offset,
            at.input_bytes,
            at.imported,
            at.rejected,
            job_id,
        )

    async def finish(self, job_id: str, state: str, error: str = "") -> None:
        await self._db.execute("finish_import_job", state, error[:1000], job_id)

    async def reject(self, job_id: str, rejections: Sequence[tuple[int, str]]) -> None:
        args = [v for line, reason in rejections for v in (job_id, line, reason[:_REASON_MAX])]
        await self._db.execute_rows("insert_import_rejections", len(rejections), 3, args)

    async def rejections(self, job_id: str, after: int, limit: int) -> list[tuple[int, str]]:
        rows = await self._db.fetch_all("import_rejections", job_id, after, limit)
        return [(int(r[0]), str(r[1])) for r in rows]
