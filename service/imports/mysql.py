"""Import jobs and their rejection reports in MySQL (on the home database)."""

from __future__ import annotations

from collections.abc import Sequence

from service.imports.jobs import Checkpoint, JobRow
from service.storage.mysql_parts import AnyDatabase, home_of

_REASON_MAX = 255


class ImportJobs:
    """The job table of ``service.imports.jobs`` in MySQL."""

    def __init__(self, db: AnyDatabase) -> None:
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

    async def lease(self, job_id: str, token: str, ttl_s: float) -> bool:
        rows = await self._db.execute("lease_import_job", token, ttl_s, job_id, token)
        return rows == 1

    async def release(self, job_id: str, token: str) -> None:
        await self._db.execute("release_import_job", job_id, token)

    async def set_digest(self, job_id: str, digest: str) -> None:
        await self._db.execute("set_import_digest", digest, job_id)

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
