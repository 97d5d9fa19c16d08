"""Import jobs: the state of a run as stored and reported, its checkpoint, and the job table
the pipeline and the admin endpoints depend on (``service.imports.mysql`` implements it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


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
    runs: int
    error: str
    started_at: datetime
    run_started_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    now: datetime  # the database's clock when read, for rates
    digest: str = ""  # of the whole inflated stream, once a run read it to the end

    @property
    def phase(self) -> str:
        """``reading`` the file, ``loading`` the sorted rows, or the final state."""
        if self.state != "running":
            return self.state
        done_reading = self.total_bytes is not None and self.input_bytes >= self.total_bytes
        return "loading" if done_reading else "reading"

    def to_json(self) -> dict[str, Any]:
        """Status with this run's rates and, while running with a known input size, an
        estimate of the time left (reading counted as ~30% of the work, loading as ~70%)."""
        end = self.now if self.state == "running" else self.updated_at
        elapsed = max((end - self.run_started_at).total_seconds(), 1e-3)
        eta = None
        if self.state == "running" and self.total_bytes:
            read = min(self.input_bytes / self.total_bytes, 1.0)
            accepted = self.rows_done - self.rejected
            loaded = self.imported / accepted if read >= 1.0 and accepted > 0 else 0.0
            done = 0.3 * read + 0.7 * min(loaded, 1.0)
            eta = round(elapsed * (1 - done) / done, 1) if done > 0 else None
        return {
            "job": self.job_id,
            "kind": self.kind,
            "source": self.source,
            "state": self.state,
            "phase": self.phase,
            "rows_read": self.rows_done,
            "imported": self.imported,
            "rejected": self.rejected,
            "byte_offset": self.byte_offset,
            "input_bytes": self.input_bytes,
            "total_bytes": self.total_bytes,
            "resumed_from": self.resumed_from,
            "runs": self.runs,
            "read_rate_rows_per_s": round(self.rows_done / elapsed, 1),
            "load_rate_rows_per_s": round((self.imported - self.resumed_from) / elapsed, 1),
            "eta_s": eta,
            "error": self.error or None,
            "started_at": self.started_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Reading got to data row ``rows_done`` (byte ``byte_offset`` of the inflated CSV,
    ``input_bytes`` of the input) with ``rejected`` rows rejected; loading wrote the first
    ``imported`` rows in key order."""

    rows_done: int
    byte_offset: int
    input_bytes: int
    imported: int
    rejected: int


class JobTable(Protocol):
    async def create(
        self, job_id: str, kind: str, source: str, fingerprint: str, total: int | None
    ) -> None: ...

    async def restart(self, job_id: str, total: int | None) -> None: ...

    async def get(self, job_id: str) -> JobRow | None: ...

    async def unfinished(self, fingerprint: str, kind: str, total: int | None) -> str | None: ...

    async def lease(self, job_id: str, token: str, ttl_s: float) -> bool:
        """Take or renew the job's lease for ``token``; False while another run holds it."""

    async def release(self, job_id: str, token: str) -> None: ...

    async def set_digest(self, job_id: str, digest: str) -> None: ...

    async def checkpoint(self, job_id: str, at: Checkpoint) -> None: ...

    async def finish(self, job_id: str, state: str, error: str = "") -> None: ...

    async def reject(self, job_id: str, rejections: Sequence[tuple[int, str]]) -> None: ...

    async def rejections(self, job_id: str, after: int, limit: int) -> list[tuple[int, str]]: ...
