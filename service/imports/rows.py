"""Rows of an import: the two CSV kinds (told apart by their header), checking each row
(with the reason when it is rejected), and cutting blocks of lines into batches."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from service.accounts.login import StaffAccount
from service.core.ids import id_problem
from service.core.passwords import hash_problem
from service.imports.columns import COLUMNS as CANDIDATE_COLUMNS
from service.imports.columns import TEACHER_COLUMNS
from service.imports.sources import ImportRefused

KIND_CANDIDATES = "candidates"
KIND_TEACHERS = "teachers"
ROLE_TEACHER = "teacher"
_SUBJECTS = ("chinese", "math", "english", "elective")


class RowError(ValueError):
    """Why a row is rejected."""


def _text(fields: list[str], at: dict[str, int], name: str, max_len: int) -> str:
    value = fields[at[name]].strip()
    if not value:
        raise RowError(f"{name}: missing")
    if len(value) > max_len:
        raise RowError(f"{name}: longer than {max_len} characters")
    if not value.isprintable():
        raise RowError(f"{name}: holds control characters")
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
    problem = hash_problem(value)
    if problem:
        raise RowError(f"password_hash: {problem}")
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
        and name.isprintable()
        and 0 < len(school) <= 16
        and school.isascii()
        and school.isdigit()
        and len(password_hash) <= 160
        and password_hash.startswith("$argon2id$")
        and password_hash.isprintable()
        and hash_problem(password_hash) is None
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


# Accepted rows wait in sorted runs on disk as lines "key<TAB>field<TAB>...": sorting the
# lines sorts by key (the key is first, and tabs sort before every printable character).
def encode_candidate(record: Candidate) -> bytes:
    cid, name, school, password_hash, exam = record
    return f"{cid}\t{name}\t{school}\t{password_hash}\t".encode() + orjson.dumps(exam) + b"\n"


def decode_candidate(line: bytes) -> Candidate:
    cid, name, school, password_hash, exam = line.rstrip(b"\n").split(b"\t", 4)
    return cid.decode(), name.decode(), school.decode(), password_hash.decode(), orjson.loads(exam)


def encode_teacher(account: StaffAccount) -> bytes:
    a = account
    return f"{a.username}\t{a.name}\t{a.school_code}\t{a.password_hash}\n".encode()


def decode_teacher(line: bytes) -> StaffAccount:
    username, name, school, password_hash = line.rstrip(b"\n").decode().split("\t")
    return StaffAccount(username, ROLE_TEACHER, school, name, password_hash)


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    columns: tuple[str, ...]
    parse: Callable[[list[str], dict[str, int]], tuple[Any, Any]]
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]


KINDS = (
    Kind(KIND_CANDIDATES, CANDIDATE_COLUMNS, parse_candidate, encode_candidate, decode_candidate),
    Kind(KIND_TEACHERS, TEACHER_COLUMNS, parse_teacher, encode_teacher, decode_teacher),
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
    """Rows read from the file: accepted ones encoded as run lines, rejected ones with the
    reason; ``end_row``/``byte_offset`` say where the file has been read up to."""

    seq: int
    end_row: int
    byte_offset: int
    input_bytes: int
    records: list[Any] = field(default_factory=list)
    rejections: list[tuple[int, str]] = field(default_factory=list)


class Splitter:
    """Turns blocks of lines into batches of ``batch_rows`` data rows. Runs off the event
    loop (pure CPU)."""

    def __init__(self, kind: Kind, at: dict[str, int], batch_rows: int) -> None:
        self._kind = kind
        self._at = at
        self._width = max(at.values()) + 1
        self._batch_rows = batch_rows
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
        return self._kind.encode(record)

    def _close(self, byte_offset: int, input_bytes: int) -> Batch:
        batch = self._open
        batch.end_row, batch.byte_offset, batch.input_bytes = self._rows, byte_offset, input_bytes
        self._seq += 1
        self._open = Batch(self._seq, 0, 0, 0)
        return batch

    def finish(self, input_bytes: int) -> Batch | None:
        """The last, partial batch (None when nothing is left)."""
        if self._rows % self._batch_rows == 0:
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
