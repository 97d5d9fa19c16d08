"""Bulk import of candidates (with exam results) or teachers from CSV or CSV.gz.

Two phases. Reading: the input is streamed (never whole in memory), inflated on the fly and
checked row by row; a bad row goes to the job's rejection report with its line number and
never stops the good ones, which go to sorted runs on disk. Loading: the runs are merged in
key order and written in batches — MySQL multi-row upserts and pipelined Redis writes — by
a few concurrent writers, and after each batch the checkpoint (rows loaded, in key order) is
committed in MySQL. A killed import run again reads the file again (the merged order is the
same every time) and skips the rows already loaded: nothing is written or counted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import itertools
import logging
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Protocol

from service.accounts.login import StaffAccount
from service.core.errors import Conflict, RecordRejected, Unavailable
from service.core.settings import Settings
from service.imports.jobs import Checkpoint, JobRow, JobTable
from service.imports.rows import KIND_CANDIDATES, Batch, Kind, Splitter, detect, split_line
from service.imports.runs import SortedRuns, run_directory
from service.imports.sources import (
    ByteSource,
    Counting,
    ImportRefused,
    line_blocks,
    plain,
    read_full,
)

log = logging.getLogger(__name__)

_FINGERPRINT_BYTES = 64 * 1024
_LEASE_POLL_S = 0.5
# A batch that keeps failing on a dependency fails the job after about this long (it can be
# resumed): waiting longer would only hide an outage from the operator.
_RETRY_FOR_S = 60.0
PHASE_READ = "reading"
PHASE_LOAD = "loading"


class CandidateSink(Protocol):
    """Where candidates go: MySQL (candidates, exam results) and Redis (exam results)."""

    async def upsert_candidates(self, rows: Sequence[tuple[str, str, str, str]]) -> None: ...

    async def upsert_exams(self, exams: dict[str, dict[str, Any]]) -> None: ...


class ExamCache(Protocol):
    async def put_exams(self, exams: dict[str, dict[str, Any]]) -> None: ...


class StaffSink(Protocol):
    async def import_teachers(self, accounts: Sequence[StaffAccount]) -> None:
        """Write teachers; never create or change an admin account."""


@dataclass(frozen=True, slots=True)
class Sinks:
    db: CandidateSink
    cache: ExamCache
    staff: StaffSink
    jobs: JobTable
    # Told which cached keys an import changed (exam results are cached per process).
    announce: Callable[[list[str]], Awaitable[None]] | None = None


class ImportConflict(Conflict):
    """That import job cannot be resumed with this file."""

    code = "import_conflict"


class ImportFailed(Unavailable):
    """The import stopped before the end; run it again to resume from its checkpoint."""

    code = "import_failed"


def _quiet(phase: str, done: int, total: int | None) -> None:
    """No progress display."""


@dataclass(frozen=True, slots=True)
class Options:
    source_name: str
    total_bytes: int | None = None  # of the raw input, when known (file size, Content-Length)
    job_id: str | None = None  # resume (or create) this job
    fresh: bool = False  # do not resume an unfinished job over the same content
    # (phase, done, total): raw bytes read while reading, rows loaded while loading.
    progress: Callable[[str, int, int | None], None] = _quiet


class _Progress:
    """Keeps the job row up to date: how far reading got, then the loading checkpoint.
    Loading batches finish out of order (concurrent writers): the checkpoint only moves over
    the unbroken prefix of loaded batches, and one caller at a time writes it."""

    def __init__(self, jobs: JobTable, job: JobRow, options: Options) -> None:
        self._jobs = jobs
        self.job_id = job.job_id
        self._options = options
        self._loaded: dict[int, int] = {}
        self._next = 0
        self._lock = asyncio.Lock()
        self.at = Checkpoint(0, 0, 0, job.imported, 0)
        self.accepted = 0

    async def read(self, batch: Batch) -> None:
        self.at = dataclasses.replace(
            self.at,
            rows_done=batch.end_row,
            byte_offset=batch.byte_offset,
            input_bytes=batch.input_bytes,
            rejected=self.at.rejected + len(batch.rejections),
        )
        self.accepted += len(batch.records)
        self._options.progress(PHASE_READ, batch.input_bytes, self._options.total_bytes)
        await self._write()

    async def loaded(self, batch: Batch) -> None:
        self._loaded[batch.seq] = len(batch.records)
        rows = 0
        while self._next in self._loaded:
            rows += self._loaded.pop(self._next)
            self._next += 1
        if rows:
            self.at = dataclasses.replace(self.at, imported=self.at.imported + rows)
            self._options.progress(PHASE_LOAD, self.at.imported, self.accepted)
            await self._write()

    async def _write(self) -> None:
        async with self._lock:
            at = self.at  # the newest by now: later callers find nothing new to write
            await _retrying(lambda: self._jobs.checkpoint(self.job_id, at))


async def _retrying(call: Callable[[], Awaitable[object]]) -> None:
    """Retry while a dependency is unavailable (deadlocks count as such), for a while."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _RETRY_FOR_S
    delay = 0.1
    while True:
        try:
            await call()
            return
        except Unavailable as exc:
            if loop.time() > deadline:
                raise
            log.warning("import: retrying in %.1fs: %s", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def _take(lines: Iterator[bytes], count: int, decode: Callable[[bytes], Any]) -> list[Any]:
    return [decode(line) for line in itertools.islice(lines, count)]


def _drop(lines: Iterator[bytes], count: int) -> None:
    for _ in itertools.islice(lines, count):
        pass


class Importer:
    def __init__(self, sinks: Sinks, settings: Settings) -> None:
        self._sinks = sinks
        self._settings = settings

    async def run(self, source: ByteSource, options: Options) -> JobRow:
        """Import everything ``source`` holds; returns the finished job. Raises
        :class:`ImportRefused` before starting for a file that is not one of the kinds,
        :class:`ImportFailed` (with the job id, to resume) when it stops on the way."""
        counting = Counting(source)
        try:
            stream = await plain(counting)
            head = await read_full(stream, _FINGERPRINT_BYTES)
        except zlib.error as exc:
            raise ImportRefused(f"not a valid gzip stream: {exc}") from None
        newline = head.find(b"\n")
        if newline < 0 and len(head) == _FINGERPRINT_BYTES:
            raise ImportRefused("no header line in the first 64 KiB")
        header_line = head if newline < 0 else head[: newline + 1]
        try:
            kind, at = detect(split_line(header_line.rstrip(b"\n")))
        except ValueError as exc:
            raise ImportRefused(f"header: {exc}") from None
        fingerprint = hashlib.sha256(kind.name.encode() + head).hexdigest()
        token = uuid.uuid4().hex
        job = await self._open_job(kind.name, fingerprint, options, token)
        keeper = asyncio.create_task(self._keep_lease(job.job_id, token), name="import-lease")
        try:
            return await self._run(job, kind, at, head, header_line, stream, counting, options)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            with contextlib.suppress(Unavailable):  # it expires by itself
                await self._sinks.jobs.release(job.job_id, token)

    async def _keep_lease(self, job_id: str, token: str) -> None:
        while True:
            await asyncio.sleep(self._settings.import_lease_s / 3)
            try:
                if not await self._sinks.jobs.lease(job_id, token, self._settings.import_lease_s):
                    log.error("import %s: lease lost; another run may have taken the job", job_id)
                    return
            except Unavailable as exc:
                log.warning("import %s: could not renew the lease: %s", job_id, exc)

    async def _run(
        self,
        job: JobRow,
        kind: Kind,
        at: dict[str, int],
        head: bytes,
        header_line: bytes,
        stream: Any,
        counting: Counting,
        options: Options,
    ) -> JobRow:
        splitter = Splitter(kind, at, self._settings.import_batch_rows)
        splitter.start_offset(len(header_line))
        progress = _Progress(self._sinks.jobs, job, options)
        log.info(
            "import %s: %s from %s, %d rows loaded before",
            job.job_id,
            kind.name,
            options.source_name,
            job.imported,
        )
        try:
            with ExitStack() as stack:
                runs = SortedRuns(run_directory(stack), self._settings.import_run_rows)
                blocks = line_blocks(stream, head[len(header_line) :])
                digest = hashlib.sha256(kind.name.encode() + header_line)
                await self._read(_digesting(blocks, digest), splitter, counting, runs, progress)
                await self._same_stream(job, digest.hexdigest())
                await self._load(stack, runs, kind, job.imported, progress)
        except ImportConflict:
            raise  # nothing was loaded by this run; the job stays as it was, resumable
        except Exception as exc:
            reason = _reason(exc)
            await _retrying(lambda: self._sinks.jobs.finish(job.job_id, "failed", reason))
            raise ImportFailed(
                f"import {job.job_id} stopped ({progress.at.imported} rows loaded): {reason}; "
                "run it again to resume",
                details={"job": job.job_id, "imported": progress.at.imported},
            ) from exc
        await _retrying(lambda: self._sinks.jobs.finish(job.job_id, "done"))
        if kind.name == KIND_CANDIDATES and self._sinks.announce is not None:
            try:
                await self._sinks.announce(["exam:*"])
            except Unavailable as exc:  # the local caches' TTL bounds how long they lag
                log.warning("import: could not announce new exam results: %s", exc)
        finished = await self._sinks.jobs.get(job.job_id)
        assert finished is not None
        return finished

    async def _same_stream(self, job: JobRow, digest: str) -> None:
        """A resume skips the rows an earlier run loaded: only right when this stream is,
        to its last byte, the one that run read (the first 64 KiB only found the job)."""
        if job.digest and job.digest != digest:
            raise ImportConflict(
                f"job {job.job_id} was started with a file that differs from this one after its "
                "first 64 KiB; nothing was loaded: upload it with ?fresh=1 as a new job"
            )
        if not job.digest:
            await _retrying(lambda: self._sinks.jobs.set_digest(job.job_id, digest))

    async def _open_job(self, kind: str, fingerprint: str, options: Options, token: str) -> JobRow:
        jobs = self._sinks.jobs
        job_id = options.job_id
        if job_id is None and not options.fresh:
            job_id = await jobs.unfinished(fingerprint, kind, options.total_bytes)
        existing = await jobs.get(job_id) if job_id else None
        if existing is None:
            opened = job_id or uuid.uuid4().hex
            try:
                await jobs.create(
                    opened, kind, options.source_name, fingerprint, options.total_bytes
                )
            except RecordRejected:  # created meanwhile by a concurrent upload
                raise ImportConflict(f"job {opened} is already running") from None
            await self._lease(opened, token)
        elif existing.fingerprint != fingerprint:
            raise ImportConflict(f"job {job_id} imported other content; start a new job")
        elif existing.state == "done":
            raise ImportConflict(f"job {job_id} is already done")
        else:
            opened = existing.job_id
            # The lease before the restart: a second upload must not reset a running job.
            await self._lease(opened, token)
            await jobs.restart(opened, options.total_bytes)
        job = await jobs.get(opened)
        assert job is not None
        return job

    async def _lease(self, job_id: str, token: str) -> None:
        """One run at a time per job. A run killed a moment ago still holds the lease until it
        expires: wait that long, then give up on a holder that keeps renewing it."""
        ttl = self._settings.import_lease_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ttl + _LEASE_POLL_S
        while not await self._sinks.jobs.lease(job_id, token, ttl):
            if loop.time() > deadline:
                raise ImportConflict(f"job {job_id} is running; wait for it or watch its status")
            await asyncio.sleep(_LEASE_POLL_S)

    async def _read(
        self,
        blocks: AsyncIterator[bytes],
        splitter: Splitter,
        counting: Counting,
        runs: SortedRuns,
        progress: _Progress,
    ) -> None:
        """Phase 1: check every row; rejections are recorded as they come (a rerun records
        them again, harmlessly), accepted rows go to the sorted runs."""
        jobs = self._sinks.jobs

        async def settle(batch: Batch) -> None:
            if batch.rejections:
                rejections = batch.rejections
                await _retrying(lambda: jobs.reject(progress.job_id, rejections))
            # Parsing and sorting are pure CPU: off the event loop, so an API process
            # importing an upload keeps serving.
            await asyncio.to_thread(runs.add, batch.records)
            await progress.read(batch)

        async for block in blocks:
            for batch in await asyncio.to_thread(splitter.feed, block, counting.consumed):
                await settle(batch)
        last = splitter.finish(counting.consumed)
        if last is not None:
            await settle(last)

    async def _load(
        self, stack: ExitStack, runs: SortedRuns, kind: Kind, skip: int, progress: _Progress
    ) -> None:
        """Phase 2: the merged rows in key order, ``skip`` of them loaded by an earlier run."""
        merged = runs.merged(stack)
        await asyncio.to_thread(_drop, merged, skip)
        writers = max(1, self._settings.import_writers)
        queue: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=writers)
        size = self._settings.import_batch_rows

        async def produce() -> None:
            for seq in itertools.count():
                records = await asyncio.to_thread(_take, merged, size, kind.decode)
                if not records:
                    break
                await queue.put(Batch(seq, 0, 0, 0, records))
            for _ in range(writers):
                await queue.put(None)

        async def write() -> None:
            while (batch := await queue.get()) is not None:
                await self._write(batch)
                await progress.loaded(batch)

        async with asyncio.TaskGroup() as group:
            group.create_task(produce(), name="import-merge")
            for i in range(writers):
                group.create_task(write(), name=f"import-write-{i}")

    async def _write(self, batch: Batch) -> None:
        sinks = self._sinks
        calls: list[Callable[[], Awaitable[object]]] = []
        if isinstance(batch.records[0], StaffAccount):
            accounts = batch.records
            calls.append(lambda: sinks.staff.import_teachers(accounts))
        else:
            # In key order already: concurrent writers take row locks in one order.
            people = [r[:4] for r in batch.records]
            exams = {r[0]: r[4] for r in batch.records}
            calls.append(lambda: sinks.db.upsert_candidates(people))
            calls.append(lambda: sinks.db.upsert_exams(exams))
            calls.append(lambda: sinks.cache.put_exams(exams))
        await asyncio.gather(*(_retrying(call) for call in calls))


async def _digesting(blocks: AsyncIterator[bytes], digest: Any) -> AsyncIterator[bytes]:
    async for block in blocks:
        digest.update(block)
        yield block


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(dict.fromkeys(_reason(e) for e in exc.exceptions))
    return f"{exc.__class__.__name__}: {exc}"
