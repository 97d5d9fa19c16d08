"""MySQL/MariaDB adapter (asyncmy): the durable copy of forms, candidates, exams, batches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncmy
import orjson
from asyncmy.errors import Error as MySQLError
from asyncmy.errors import InterfaceError, InternalError, OperationalError

from schemas.records import FormKey, FormRecord
from schemas.sql_files import multi_row, query
from service.core.errors import DatabaseUnavailable, RecordRejected, VolregError
from service.core.ids import shard_of
from service.core.ports import Batch, Candidate
from service.core.settings import Settings

# Server error codes worth retrying: deadlock, lock wait timeout, server gone, read-only.
_TRANSIENT_CODES = {1205, 1213, 2002, 2003, 2006, 2013, 1040, 1053, 1927, 1290}


@dataclass(frozen=True, slots=True)
class MySQLTarget:
    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def parse(cls, dsn: str) -> MySQLTarget:
        """``mysql://user:password@host:port/database``."""
        url = urlsplit(dsn)
        if url.scheme != "mysql" or not url.path.strip("/"):
            raise ValueError(f"expected mysql://user:password@host:port/database, got {dsn!r}")
        return cls(
            host=url.hostname or "127.0.0.1",
            port=url.port or 3306,
            user=unquote(url.username or "root"),
            password=unquote(url.password or ""),
            database=url.path.strip("/"),
        )


def _translate(exc: BaseException) -> VolregError:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    transient = isinstance(exc, OSError | TimeoutError | InterfaceError) or (
        isinstance(exc, OperationalError | InternalError)
        and (code is None or code in _TRANSIENT_CODES)
    )
    if transient:
        return DatabaseUnavailable(f"MySQL: {exc}")
    return RecordRejected(f"MySQL refused: {exc}")


class MySQLDatabase:
    def __init__(self, pool: Any, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings

    @asynccontextmanager
    async def _cursor(self) -> AsyncIterator[Any]:
        """A cursor on a pooled connection, under the query timeout.

        A connection that saw an error or a timeout is closed, not reused: its protocol state
        is unknown.
        """
        conn = None
        try:
            async with asyncio.timeout(self._settings.mysql_timeout_s):
                conn = await self._pool.acquire()
                try:
                    async with conn.cursor() as cur:
                        yield cur
                except BaseException:
                    conn.close()
                    raise
        except (MySQLError, OSError, TimeoutError) as exc:
            raise _translate(exc) from exc
        finally:
            if conn is not None:
                self._pool.release(conn)

    async def _fetchone(self, name: str, *args: Any) -> Any:
        async with self._cursor() as cur:
            await cur.execute(query(name), args)
            return await cur.fetchone()

    async def _fetchall(self, name: str, *args: Any) -> Any:
        async with self._cursor() as cur:
            await cur.execute(query(name), args)
            return await cur.fetchall()

    async def get_form(self, key: FormKey) -> FormRecord | None:
        row = await self._fetchone("get_form", key.candidate_id, key.batch)
        if row is None:
            return None
        return FormRecord(
            candidate_id=row[0],
            batch=row[1],
            version=int(row[2]),
            updated_us=int(row[3]),
            status=row[4],
            payload=bytes(row[5]),
        )

    async def upsert_forms(self, records: Sequence[FormRecord]) -> None:
        """One multi-row, version-guarded upsert (one transaction); rows sorted by key so that
        concurrent consumers take row locks in the same order (no deadlocks between them)."""
        if not records:
            return
        rows = sorted(records, key=lambda r: (r.candidate_id, r.batch, r.version))
        shards = self._settings.shards
        args: list[Any] = []
        for r in rows:
            args += [
                r.candidate_id,
                r.batch,
                shard_of(r.candidate_id, shards),
                r.version,
                r.updated_us,
                r.status,
                r.payload,
            ]
        await self._execute_many_rows("upsert_forms", len(rows), 7, args)

    async def upsert_candidates(self, rows: Sequence[tuple[str, str, str, str]]) -> None:
        """(candidate_id, name, school_code, password_hash) rows."""
        shards = self._settings.shards
        args = [v for r in rows for v in (*r, shard_of(r[0], shards))]
        await self._execute_many_rows("upsert_candidates", len(rows), 5, args)

    async def upsert_exams(self, exams: dict[str, dict[str, Any]]) -> None:
        args: list[Any] = []
        for cid, exam in exams.items():
            args += [
                cid,
                exam["total_score"],
                exam["rank"],
                orjson.dumps(exam["subjects"]).decode(),
            ]
        await self._execute_many_rows("upsert_exams", len(exams), 4, args)

    async def upsert_batch(self, batch: Batch) -> None:
        async with self._cursor() as cur:
            await cur.execute(
                query("upsert_batch"),
                (
                    batch.code,
                    batch.name,
                    batch.opens_at,
                    batch.closes_at,
                    int(batch.changes_after_submit),
                ),
            )

    async def _execute_many_rows(self, name: str, rows: int, columns: int, args: list[Any]) -> None:
        if not rows:
            return
        async with self._cursor() as cur:
            await cur.execute(multi_row(name, rows, columns), args)

    # --- Named queries for the sibling adapters (staff, catalogue, import jobs).
    async def fetch_one(self, name: str, *args: Any) -> Any:
        return await self._fetchone(name, *args)

    async def fetch_all(self, name: str, *args: Any) -> Any:
        return await self._fetchall(name, *args)

    async def fetch_rows(self, name: str, rows: int, columns: int, args: Sequence[Any]) -> Any:
        """A multi-row SELECT (``{rows}`` filled with ``rows`` groups)."""
        async with self._cursor() as cur:
            await cur.execute(multi_row(name, rows, columns), list(args))
            return await cur.fetchall()

    async def execute(self, name: str, *args: Any) -> int:
        """Run a named statement; returns the affected row count."""
        async with self._cursor() as cur:
            await cur.execute(query(name), args)
            return int(cur.rowcount)

    async def execute_rows(self, name: str, rows: int, columns: int, args: list[Any]) -> None:
        await self._execute_many_rows(name, rows, columns, args)

    async def transaction(self, steps: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Run ``(statement, args)`` steps in one transaction: all or nothing."""
        async with self._cursor() as cur:
            await cur.execute("BEGIN")
            for statement, args in steps:
                await cur.execute(statement, list(args))
            await cur.execute("COMMIT")

    async def get_candidate(self, candidate_id: str) -> Candidate | None:
        row = await self._fetchone("get_candidate", candidate_id)
        return None if row is None else Candidate(*row)

    async def token_generation(self, candidate_id: str) -> int | None:
        row = await self._fetchone("candidate_token_generation", candidate_id)
        return None if row is None else int(row[0])

    async def bump_token_generation(self, candidate_id: str) -> None:
        await self.execute("bump_candidate_tokens", candidate_id)

    async def get_exam(self, candidate_id: str) -> dict[str, Any] | None:
        row = await self._fetchone("get_exam", candidate_id)
        if row is None:
            return None
        return {"total_score": float(row[0]), "rank": int(row[1]), "subjects": orjson.loads(row[2])}

    async def form_versions(self, batch: str, candidate_ids: Sequence[str]) -> dict[str, int]:
        """The stored version of each of these candidates' forms (absent when none)."""
        if not candidate_ids:
            return {}
        async with self._cursor() as cur:
            statement = multi_row("form_versions", len(candidate_ids), 1)
            await cur.execute(statement, [batch, *candidate_ids])
            return {row[0]: int(row[1]) for row in await cur.fetchall()}

    async def list_batches(self) -> list[Batch]:
        return [_batch(row) for row in await self._fetchall("list_batches")]

    async def server_figures(self, names: Sequence[str]) -> dict[str, str]:
        """Server variables and global status counters by name (for benchmark reports: the
        durability settings, commits and fsyncs). Names are matched, never interpolated."""
        wanted = set(names)
        figures: dict[str, str] = {}
        async with self._cursor() as cur:
            for statement in ("SHOW GLOBAL VARIABLES", "SHOW GLOBAL STATUS"):
                await cur.execute(statement)
                figures |= {str(k): str(v) for k, v in await cur.fetchall() if k in wanted}
        return figures

    async def ping(self) -> None:
        async with self._cursor() as cur:
            await cur.execute("SELECT 1")
            await cur.fetchone()

    # --- Benchmark only: the naive design that `volreg serve --naive` serves for comparison.
    async def naive_save_form(self, record: FormRecord) -> int:
        """Write one form in its own durable commit; returns the version stored (the record's,
        or one above the stored version when that was not older)."""
        args = (
            record.candidate_id,
            record.batch,
            shard_of(record.candidate_id, self._settings.shards),
            record.version,
            record.updated_us,
            record.status,
            record.payload,
        )
        async with self._cursor() as cur:
            await cur.execute(query("naive_save_form"), args)
            # 0 when the row was inserted (no LAST_INSERT_ID(expr) ran): ours is stored.
            return int(cur.lastrowid or 0) or record.version


def _batch(row: Sequence[Any]) -> Batch:
    return Batch(row[0], row[1], row[2], row[3], bool(row[4]))


def pool_kwargs(settings: Settings, *, database: bool = True) -> dict[str, Any]:
    target = MySQLTarget.parse(settings.mysql_dsn)
    kwargs: dict[str, Any] = {
        "host": target.host,
        "port": target.port,
        "user": target.user,
        "password": target.password,
        "connect_timeout": settings.mysql_timeout_s,
        # Each statement is its own transaction: a multi-row upsert is atomic on its own, and
        # reads never sit on a stale REPEATABLE READ snapshot.
        "autocommit": True,
        "charset": "utf8mb4",
    }
    if database:
        kwargs["db"] = target.database
    return kwargs


@asynccontextmanager
async def connect_one(settings: Settings) -> AsyncIterator[MySQLDatabase]:
    """A pool that starts empty, so the service starts (not ready) while MySQL is down."""
    pool = await asyncmy.create_pool(
        minsize=0, maxsize=settings.mysql_pool_size, **pool_kwargs(settings)
    )
    try:
        yield MySQLDatabase(pool, settings)
    finally:
        pool.close()
        await pool.wait_closed()


async def wait_all(calls: Iterable[Awaitable[None]]) -> None:
    """Run the calls concurrently and wait for every one; then raise a retryable failure
    first (the caller retries), else the first other failure."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise next((e for e in errors if isinstance(e, DatabaseUnavailable)), errors[0])
