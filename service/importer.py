"""Bulk import of candidates (with exam results) or teachers from CSV or CSV.gz.

The input is streamed (never whole in memory) and decompressed on the fly, validated row by
row, and written in batches — MySQL multi-row upserts and pipelined Redis writes — by a few
concurrent writers. After each batch the job's checkpoint (rows and bytes settled) is
committed in MySQL, so a killed import run again skips exactly the settled rows: upserts make
a batch written twice harmless, and rows are never counted twice. Bad rows go to the job's
rejection report with their line number and never stop the good ones.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import logging
import math
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gzip_stream import AsyncGZIPDecompressedStream

from service.adapters.mysql_imports import Checkpoint, ImportJobs, JobRow
from service.adapters.mysql_staff import StaffAccount
from service.domain.ids import id_problem
from service.errors import Conflict, Unavailable, VolregError
from service.gendata import COLUMNS as CANDIDATE_COLUMNS
from service.gendata import TEACHER_COLUMNS
from service.settings import Settings

log = logging.getLogger(__name__)

KIND_CANDIDATES = "candidates"
KIND_TEACHERS = "teachers"
ROLE_TEACHER = "teacher"
_CHUNK = 1 << 20
_FINGERPRINT_BYTES = 64 * 1024
_MAX_LINE = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_SUBJECTS = ("chinese", "math", "english", "elective")
# A batch that keeps failing on a dependency fails the job after about this long (it can be
# resumed): waiting longer would only hide an outage from the operator.
_RETRY_FOR_S = 60.0


class ByteSource(Protocol):
    async def read(self, size: int) -> bytes: ...


class CandidateSink(Protocol):
    """Where candidates go: MySQL (candidates, exam results) and Redis (exam results)."""

    async def upsert_candidates(self, rows: Sequence[tuple[str, str, str, str]]) -> None: ...

    async def upsert_exams(self, exams: dict[str, dict[str, Any]]) -> None: ...


class ExamCache(Protocol):
    async def put_exams(self, exams: dict[str, dict[str, Any]]) -> None: ...


class StaffSink(Protocol):
    async def upsert_staff(self, accounts: Sequence[StaffAccount]) -> None: ...


@dataclass(frozen=True, slots=True)
class Sinks:
    db: CandidateSink
    cache: ExamCache
    staff: StaffSink
    jobs: ImportJobs
    # Told which cached keys an import changed (exam results are cached per process).
    announce: Callable[[list[str]], Awaitable[None]] | None = None


class ImportRefused(VolregError):
    """The file cannot be imported (unknown header, not CSV, not gzip)."""

    status = 422
    code = "import_refused"


class ImportConflict(Conflict):
    """That import job cannot be resumed with this file."""

    code = "import_conflict"


class UploadInterrupted(VolregError):
    """The upload stopped or stalled before its end."""

    status = 400
    code = "upload_interrupted"


class ImportFailed(Unavailable):
    """The import stopped before the end; run it again to resume from its checkpoint."""

    code = "import_failed"


# --- Sources -------------------------------------------------------------------------------


class Counting:
    """Counts the raw bytes read (compressed, for an upload or a .gz file): progress and ETA."""

    def __init__(self, inner: ByteSource) -> None:
        self._inner = inner
        self.consumed = 0

    async def read(self, size: int) -> bytes:
        data = await self._inner.read(size)
        self.consumed += len(data)
        return data


class _Prefixed:
    """A source with some bytes already read from it put back in front."""

    def __init__(self, head: bytes, inner: ByteSource) -> None:
        self._head = head
        self._inner = inner

    async def read(self, size: int) -> bytes:
        if self._head:
            data, self._head = self._head[:size], self._head[size:]
            return data
        return await self._inner.read(size)


class FileSource:
    """A local file; reads are short local disk reads, done in place."""

    def __init__(self, fh: Any) -> None:
        self._fh = fh

    async def read(self, size: int) -> bytes:
        data: bytes = self._fh.read(size)
        return data


class StreamSource:
    """An HTTP request body (``request.content``); every read has a timeout."""

    def __init__(self, stream: Any, timeout_s: float) -> None:
        self._stream = stream
        self._timeout_s = timeout_s

    async def read(self, size: int) -> bytes:
        try:
            async with asyncio.timeout(self._timeout_s):
                data: bytes = await self._stream.read(size)
                return data
        except TimeoutError:
            raise UploadInterrupted(f"no data for {self._timeout_s:g}s") from None
        except Exception as exc:  # the client went away: whatever the transport raised
            raise UploadInterrupted(f"{exc.__class__.__name__}: {exc}") from exc


async def _read_full(source: ByteSource, size: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < size:
        data = await source.read(size - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


async def _plain(source: ByteSource) -> ByteSource:
    """The decompressed stream when the input is gzip (by its magic bytes), else itself."""
    head = await _read_full(source, 2)
    prefixed = _Prefixed(head, source)
    if head == _GZIP_MAGIC:
        # Small reads bound how much one compressed chunk can inflate to at once.
        stream: ByteSource = AsyncGZIPDecompressedStream(prefixed)
        return stream
    return prefixed


async def _line_blocks(source: ByteSource, head: bytes) -> AsyncIterator[bytes]:
    """Blocks of whole lines (each ends with a newline, except maybe the file's last)."""
    tail = head
    while True:
        data = await source.read(_CHUNK)
        if not data:
            break
        data = tail + data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            if len(data) > _MAX_LINE:
                raise ImportRefused(f"a line is longer than {_MAX_LINE} bytes")
            tail = data
            continue
        tail = data[cut:]
        yield data[:cut]
    if tail:
        yield tail


# --- Rows ----------------------------------------------------------------------------------


class RowError(ValueError):
    """Why a row is rejected."""


def _text(fields: list[str], at: dict[str, int], name: str, max_len: int) -> str:
    value = fields[at[name]].strip()
    if not value:
        raise RowError(f"{name}: missing")
    if len(value) > max_len:
        raise RowError(f"{name}: longer than {max_len} characters")
    return value


def _number(fields: list[str], at: dict[str, int], name: str, high: float) -> float:
    raw = fields[at[name]].strip()
    if not raw:
        raise RowError(f"{name}: missing")
    try:
        value = float(raw)
    except ValueError:
        raise RowError(f"{name}: not a number: {raw[:20]!r}") from None
    if not math.isfinite(value) or not 0 <= value <= high:
        raise RowError(f"{name}: {raw[:20]} is outside 0..{high:g}")
    return value


def _hash(fields: list[str], at: dict[str, int]) -> str:
    value = _text(fields, at, "password_hash", 160)
    if not value.startswith("$argon2id$"):
        raise RowError("password_hash: not an argon2id hash")
    return value


def _school(fields: list[str], at: dict[str, int]) -> str:
    value = _text(fields, at, "school_code", 16)
    if not value.isascii() or not value.isdigit():
        raise RowError("school_code: digits only")
    return value


Candidate = tuple[str, str, str, str, dict[str, Any]]


def parse_candidate(fields: list[str], at: dict[str, int]) -> tuple[int, Candidate]:
    """A checked candidate row. The fast path checks everything in few steps (a million rows
    take seconds); a row failing it is checked again field by field to say why."""
    cid = fields[at["candidate_id"]].strip()
    name = fields[at["name"]].strip()
    school = fields[at["school_code"]].strip()
    password_hash = fields[at["password_hash"]]
    try:
        total = float(fields[at["total_score"]])
        rank = float(fields[at["rank"]])
        subjects = {s: float(fields[at[s]]) for s in _SUBJECTS}
    except ValueError:
        _explain(fields, at)
        raise
    # NaN fails every comparison and infinity every upper bound: both fall to _explain.
    if not (
        id_problem(cid) is None
        and 0 < len(name) <= 64
        and 0 < len(school) <= 16
        and school.isascii()
        and school.isdigit()
        and len(password_hash) <= 160
        and password_hash.startswith("$argon2id$")
        and 0 <= total <= 1000
        and 1 <= rank <= 10_000_000
        and rank == int(rank)
        and all(0 <= v <= 300 for v in subjects.values())
    ):
        _explain(fields, at)
    exam = {"total_score": total, "rank": int(rank), "subjects": subjects}
    # The first 17 digits decide the check digit: as an int they are a compact set key.
    return int(cid[:17]), (cid, name, school, password_hash, exam)


def _explain(fields: list[str], at: dict[str, int]) -> None:
    """Raise RowError naming the first bad field of a candidate row."""
    problem = id_problem(fields[at["candidate_id"]].strip())
    if problem:
        raise RowError(f"candidate_id: {problem}")
    _text(fields, at, "name", 64)
    _school(fields, at)
    _hash(fields, at)
    _number(fields, at, "total_score", 1000)
    rank = _number(fields, at, "rank", 10_000_000)
    if rank < 1 or rank != int(rank):
        raise RowError("rank: must be a whole number from 1")
    for subject in _SUBJECTS:
        _number(fields, at, subject, 300)
    raise RowError("invalid row")  # unreachable while the two checks agree


def parse_teacher(fields: list[str], at: dict[str, int]) -> tuple[str, StaffAccount]:
    username = _text(fields, at, "username", 64)
    if not username.isascii() or not all(c.isalnum() or c in "._-" for c in username):
        raise RowError("username: letters, digits, '.', '_' or '-' only")
    school, name = _school(fields, at), _text(fields, at, "name", 64)
    return username, StaffAccount(username, ROLE_TEACHER, school, name, _hash(fields, at))


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    columns: tuple[str, ...]
    parse: Callable[[list[str], dict[str, int]], tuple[Any, Any]]


KINDS = (
    Kind(KIND_CANDIDATES, CANDIDATE_COLUMNS, parse_candidate),
    Kind(KIND_TEACHERS, TEACHER_COLUMNS, parse_teacher),
)


def detect(header: list[str]) -> tuple[Kind, dict[str, int]]:
    """The kind of file a header line names, and each column's index."""
    at = {name.strip().lstrip("\ufeff"): i for i, name in enumerate(header)}
    for kind in KINDS:
        if set(kind.columns) <= set(at):
            return kind, at
    expected = " or ".join(",".join(k.columns) for k in KINDS)
    raise ImportRefused(f"unknown header; expected the columns {expected}")


@dataclass(slots=True)
class Batch:
    seq: int
    end_row: int  # data rows settled when this batch is, counted from the file's start
    byte_offset: int
    input_bytes: int
    records: list[Any] = field(default_factory=list)
    rejections: list[tuple[int, str]] = field(default_factory=list)


class Splitter:
    """Turns blocks of lines into batches of ``batch_rows`` data rows. Rows up to ``skip``
    (settled by an earlier run) are validated only to remember their keys, so that duplicates
    later in the file are still caught. Runs off the event loop (pure CPU)."""

    def __init__(self, kind: Kind, at: dict[str, int], batch_rows: int, skip: int) -> None:
        self._kind = kind
        self._at = at
        self._width = max(at.values()) + 1
        self._batch_rows = batch_rows
        self._skip = skip
        self._seen: set[Any] = set()
        self._rows = 0
        self._lines = 1  # the header
        self._offset = 0
        self._data_bytes = 0
        self._seq = 0
        self._open = Batch(0, 0, 0, 0)

    def start_offset(self, header_bytes: int) -> None:
        self._offset = self._data_bytes = header_bytes

    def feed(self, block: bytes, input_bytes: int) -> list[Batch]:
        self._data_bytes += len(block)
        raw_lines = block.split(b"\n")
        if raw_lines[-1] == b"":
            raw_lines.pop()
        done: list[Batch] = []
        for raw in raw_lines:
            self._lines += 1
            self._offset += len(raw) + 1
            if not raw.strip():
                continue  # blank line
            self._rows += 1
            outcome = self._row(raw)
            if self._rows <= self._skip:
                continue
            if isinstance(outcome, str):
                self._open.rejections.append((self._lines, outcome))
            else:
                self._open.records.append(outcome)
            if self._rows % self._batch_rows == 0:
                done.append(self._close(self._offset, input_bytes))
        return done

    def _row(self, raw: bytes) -> Any:
        """The record, or why the row is rejected."""
        try:
            fields = split_line(raw)
        except ValueError as exc:
            return str(exc)
        if len(fields) < self._width:
            return f"expected {self._width} fields, got {len(fields)}"
        try:
            key, record = self._kind.parse(fields, self._at)
        except RowError as exc:
            return str(exc)
        if key in self._seen:
            return f"{self._kind.columns[0]}: duplicate in file"
        self._seen.add(key)
        return record

    def _close(self, byte_offset: int, input_bytes: int) -> Batch:
        batch = self._open
        batch.end_row, batch.byte_offset, batch.input_bytes = self._rows, byte_offset, input_bytes
        self._seq += 1
        self._open = Batch(self._seq, 0, 0, 0)
        return batch

    def finish(self, input_bytes: int) -> Batch | None:
        """The last, partial batch (None when nothing is left)."""
        if self._rows <= self._skip or self._rows % self._batch_rows == 0:
            return None
        # The last line may lack its newline: the offset must not pass the end of the data.
        return self._close(min(self._offset, self._data_bytes), input_bytes)


def split_line(raw: bytes) -> list[str]:
    """The fields of one CSV line. Records never span lines here (no field holds a line
    break), so one bad quote spoils one row, not the rest of the file."""
    try:
        text = raw.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        raise ValueError("not valid UTF-8") from None
    quotes = text.count('"')
    if quotes == 0:
        return text.split(",")  # the common cases, several times faster than the csv module
    if quotes == 2:
        # One quoted field (a password hash holds commas): split around it.
        before, quoted, after = text.split('"')
        if before[-1:] in ("", ",") and after[:1] in ("", ","):
            head = before[:-1].split(",") if before else []
            return [*head, quoted, *(after[1:].split(",") if after else [])]
    try:
        return next(csv.reader([text], strict=True))
    except csv.Error as exc:
        raise ValueError(f"bad CSV quoting: {exc}") from None


# --- The job -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    source_name: str
    total_bytes: int | None = None  # of the raw input, when known (file size, Content-Length)
    job_id: str | None = None  # resume (or create) this job
    fresh: bool = False  # do not resume an unfinished job over the same content
    progress: Callable[[int], None] = lambda rows: None


class _Checkpoints:
    """Batches finish out of order (concurrent writers); the checkpoint only moves over the
    unbroken prefix of settled batches, and is written by one caller at a time."""

    def __init__(self, jobs: ImportJobs, job: JobRow, progress: Callable[[int], None]) -> None:
        self._jobs = jobs
        self.job_id = job.job_id
        self._progress = progress
        self._settled: dict[int, Batch] = {}
        self._next = 0
        self._lock = asyncio.Lock()
        self.at = Checkpoint(
            job.rows_done, job.byte_offset, job.input_bytes, job.imported, job.rejected
        )

    async def settled(self, batch: Batch) -> None:
        self._settled[batch.seq] = batch
        moved = False
        while self._next in self._settled:
            b = self._settled.pop(self._next)
            self._next += 1
            self.at = Checkpoint(
                b.end_row,
                b.byte_offset,
                b.input_bytes,
                self.at.imported + len(b.records),
                self.at.rejected + len(b.rejections),
            )
            self._progress(len(b.records) + len(b.rejections))
            moved = True
        if moved:
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
            plain = await _plain(counting)
            head = await _read_full(plain, _FINGERPRINT_BYTES)
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
        job = await self._open_job(kind.name, fingerprint, options)
        splitter = Splitter(kind, at, self._settings.import_batch_rows, job.rows_done)
        splitter.start_offset(len(header_line))
        checkpoints = _Checkpoints(self._sinks.jobs, job, options.progress)
        log.info(
            "import %s: %s from %s, resuming after row %d",
            job.job_id,
            kind.name,
            options.source_name,
            job.rows_done,
        )
        try:
            await self._pipeline(
                _line_blocks(plain, head[len(header_line) :]), splitter, counting, checkpoints
            )
        except Exception as exc:
            reason = _reason(exc)
            await _retrying(lambda: self._sinks.jobs.finish(job.job_id, "failed", reason))
            raise ImportFailed(
                f"import {job.job_id} stopped after row {checkpoints.at.rows_done}: {reason}; "
                "run it again to resume",
                details={"job": job.job_id, "rows_done": checkpoints.at.rows_done},
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

    async def _open_job(self, kind: str, fingerprint: str, options: Options) -> JobRow:
        jobs = self._sinks.jobs
        job_id = options.job_id
        if job_id is None and not options.fresh:
            job_id = await jobs.unfinished(fingerprint, kind, options.total_bytes)
        existing = await jobs.get(job_id) if job_id else None
        if existing is None:
            opened = job_id or uuid.uuid4().hex
            await jobs.create(opened, kind, options.source_name, fingerprint, options.total_bytes)
        elif existing.fingerprint != fingerprint:
            raise ImportConflict(f"job {job_id} imported other content; start a new job")
        elif existing.state == "done":
            raise ImportConflict(f"job {job_id} is already done")
        else:
            opened = existing.job_id
            await jobs.restart(opened, options.total_bytes)
        job = await jobs.get(opened)
        assert job is not None
        return job

    async def _pipeline(
        self,
        blocks: AsyncIterator[bytes],
        splitter: Splitter,
        counting: Counting,
        checkpoints: _Checkpoints,
    ) -> None:
        writers = max(1, self._settings.import_writers)
        queue: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=2 * writers)

        async def produce() -> None:
            async for block in blocks:
                # Parsing is pure CPU: off the event loop, so an API process keeps serving.
                for batch in await asyncio.to_thread(splitter.feed, block, counting.consumed):
                    await queue.put(batch)
            last = splitter.finish(counting.consumed)
            if last is not None:
                await queue.put(last)
            for _ in range(writers):
                await queue.put(None)

        async def write() -> None:
            while (batch := await queue.get()) is not None:
                await self._write(checkpoints.job_id, batch)
                await checkpoints.settled(batch)

        async with asyncio.TaskGroup() as group:
            group.create_task(produce(), name="import-read")
            for i in range(writers):
                group.create_task(write(), name=f"import-write-{i}")

    async def _write(self, job_id: str, batch: Batch) -> None:
        sinks = self._sinks
        calls: list[Callable[[], Awaitable[object]]] = []
        if batch.records and isinstance(batch.records[0], StaffAccount):
            accounts = batch.records
            calls.append(lambda: sinks.staff.upsert_staff(accounts))
        elif batch.records:
            # Sorted: concurrent writers then take row locks in one order (no deadlocks).
            rows = sorted(batch.records)
            people = [r[:4] for r in rows]
            exams = {r[0]: r[4] for r in rows}
            calls.append(lambda: sinks.db.upsert_candidates(people))
            calls.append(lambda: sinks.db.upsert_exams(exams))
            calls.append(lambda: sinks.cache.put_exams(exams))
        if batch.rejections:
            rejections = batch.rejections
            calls.append(lambda: sinks.jobs.reject(job_id, rejections))
        await asyncio.gather(*(_retrying(call) for call in calls))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(dict.fromkeys(_reason(e) for e in exc.exceptions))
    return f"{exc.__class__.__name__}: {exc}"
