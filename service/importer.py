"""Bulk load of candidates and exam results from CSV (optionally gzip), in batches."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from service.adapters.mysql_db import MySQLDatabase
from service.adapters.mysql_shards import ShardedDatabase
from service.adapters.redis_cache import RedisCache
from service.domain.ids import id_problem
from service.gendata import COLUMNS

BATCH_ROWS = 2000


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)


def _open(path: Path) -> IO[str]:
    raw = path.open("rb")
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8", newline="")
    raw.seek(0)
    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


def _parse(row: dict[str, str]) -> tuple[tuple[str, str, str, str], dict[str, Any]]:
    cid = row["candidate_id"]
    problem = id_problem(cid)
    if problem:
        raise ValueError(f"candidate_id: {problem}")
    for name in ("name", "school_code", "password_hash"):
        if not row.get(name):
            raise ValueError(f"{name}: missing")
    exam = {
        "total_score": float(row["total_score"]),
        "rank": int(row["rank"]),
        "subjects": {s: float(row[s]) for s in ("chinese", "math", "english", "elective")},
    }
    return (cid, row["name"], row["school_code"], row["password_hash"]), exam


def _batches(reader: csv.DictReader[str], report: ImportReport) -> Iterator[list[Any]]:
    batch: list[Any] = []
    seen: set[str] = set()
    for number, row in enumerate(reader, start=2):  # line 1 is the header
        report.rows += 1
        try:
            parsed = _parse(row)
        except (ValueError, KeyError, TypeError) as exc:
            report.rejected.append((number, str(exc)))
            continue
        if parsed[0][0] in seen:
            report.rejected.append((number, "candidate_id: duplicate in file"))
            continue
        seen.add(parsed[0][0])
        batch.append(parsed)
        if len(batch) >= BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


async def import_candidates(
    path: Path,
    db: MySQLDatabase | ShardedDatabase,
    cache: RedisCache,
    progress: Callable[[int], None],
) -> ImportReport:
    report = ImportReport()
    with _open(path) as fh:
        reader = csv.DictReader(fh)
        missing = set(COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path.name}: missing columns {sorted(missing)}")
        for batch in _batches(reader, report):
            await db.upsert_candidates([c for c, _ in batch])
            exams = {c[0]: e for c, e in batch}
            await db.upsert_exams(exams)
            await cache.put_exams(exams)
            report.imported += len(batch)
            progress(len(batch))
    return report
