"""In-memory fakes of the import ports: the job table (``JobTable``) with its rejections,
as the ``import_jobs`` queries keep them, for tests without servers. Candidates and exam
results go to ``service.forms.fakes.InMemoryDatabase`` and ``InMemoryFormCache``, staff
accounts to ``service.accounts.fakes.InMemoryStaff``."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from service.core.errors import DatabaseUnavailable
from service.imports.jobs import Checkpoint, JobRow

_REASON_MAX = 255


@dataclass
class InMemoryJobTable:
    down: bool = False
    jobs: dict[str, JobRow] = field(default_factory=dict)
    rejected: dict[str, dict[int, str]] = field(default_factory=dict)
    leases: dict[str, tuple[str, float]] = field(default_factory=dict)

    def _check(self) -> None:
        if self.down:
            raise DatabaseUnavailable("mysql unavailable (in-memory fake set down)")

    def _update(self, job_id: str, **changes: object) -> None:
        job = self.jobs.get(job_id)
        if job is not None:
            changed = dataclasses.replace(job, **changes)  # type: ignore[arg-type]
            self.jobs[job_id] = dataclasses.replace(changed, updated_at=datetime.now())

    async def create(
        self, job_id: str, kind: str, source: str, fingerprint: str, total: int | None
    ) -> None:
        self._check()
        now = datetime.now()
        self.jobs[job_id] = JobRow(
            job_id, kind, source[:255], fingerprint, "running", total,
            0, 0, 0, 0, 0, 0, 1, "", now, now, now, None, now,
        )  # fmt: skip

    async def lease(self, job_id: str, token: str, ttl_s: float) -> bool:
        self._check()
        held, until = self.leases.get(job_id, ("", 0.0))
        if job_id not in self.jobs or (held and held != token and until > time.monotonic()):
            return False
        self.leases[job_id] = (token, time.monotonic() + ttl_s)
        return True

    async def release(self, job_id: str, token: str) -> None:
        self._check()
        if self.leases.get(job_id, ("", 0.0))[0] == token:
            del self.leases[job_id]

    async def set_digest(self, job_id: str, digest: str) -> None:
        self._check()
        job = self.jobs.get(job_id)
        if job is not None and not job.digest:
            self._update(job_id, digest=digest)

    async def restart(self, job_id: str, total: int | None) -> None:
        self._check()
        job = self.jobs.get(job_id)
        if job is None:
            return
        self._update(
            job_id,
            state="running",
            error="",
            total_bytes=total,
            runs=job.runs + 1,
            resumed_from=job.imported,
            rows_done=0,
            rejected=0,
            byte_offset=0,
            input_bytes=0,
            run_started_at=datetime.now(),
            finished_at=None,
        )

    async def get(self, job_id: str) -> JobRow | None:
        self._check()
        job = self.jobs.get(job_id)
        return None if job is None else dataclasses.replace(job, now=datetime.now())

    async def unfinished(self, fingerprint: str, kind: str, total: int | None) -> str | None:
        self._check()
        matching = [
            job
            for job in self.jobs.values()
            if job.fingerprint == fingerprint
            and job.kind == kind
            and job.state != "done"
            and job.total_bytes == total
        ]
        return max(matching, key=lambda j: j.started_at).job_id if matching else None

    async def checkpoint(self, job_id: str, at: Checkpoint) -> None:
        self._check()
        self._update(
            job_id,
            rows_done=at.rows_done,
            byte_offset=at.byte_offset,
            input_bytes=at.input_bytes,
            imported=at.imported,
            rejected=at.rejected,
        )

    async def finish(self, job_id: str, state: str, error: str = "") -> None:
        self._check()
        self._update(job_id, state=state, error=error[:1000], finished_at=datetime.now())

    async def reject(self, job_id: str, rejections: Sequence[tuple[int, str]]) -> None:
        self._check()
        lines = self.rejected.setdefault(job_id, {})
        for line, reason in rejections:
            lines.setdefault(line, reason[:_REASON_MAX])  # INSERT IGNORE

    async def rejections(self, job_id: str, after: int, limit: int) -> list[tuple[int, str]]:
        self._check()
        lines = self.rejected.get(job_id, {})
        return [(line, lines[line]) for line in sorted(lines) if line > after][:limit]
