"""Synthetic candidates with exam results: valid IDs, skewed school sizes, precomputed hashes."""

from __future__ import annotations

import csv
import gzip
import itertools
import random
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import IO

from service.core.ids import make_id
from service.core.passwords import Passwords
from service.imports.columns import COLUMNS, TEACHER_COLUMNS

DEMO_CANDIDATE = "11010519491231002X"
DEMO_PASSWORD = "demo-password"
DEMO_SCHOOL = "110105001"
DEMO_TEACHER = "teacher-demo"
DEMO_TEACHER_PASSWORD = "demo-teacher"
DEMO_ADMIN = "admin"
DEMO_ADMIN_PASSWORD = "demo-admin"
_REGIONS = (110101, 110105, 110108, 120101, 130102, 310104, 320102, 330106, 370102, 440106)
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"


def _ids(rng: random.Random, count: int) -> Iterator[str]:
    seen = {DEMO_CANDIDATE}
    yield DEMO_CANDIDATE
    start = date(2006, 1, 1)
    while len(seen) < count:
        birth = (start + timedelta(days=rng.randrange(3 * 365))).strftime("%Y%m%d")
        cid = make_id(rng.choice(_REGIONS), birth, rng.randrange(1000))
        if cid not in seen:
            seen.add(cid)
            yield cid


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "wt", encoding="utf-8", newline="", compresslevel=5)
    return path.open("w", encoding="utf-8", newline="")


def _hash_pool(password: str, size: int = 8) -> list[str]:
    """A few argon2id hashes of one password (each with its own salt): hashing is the slow
    part, so rows reuse these instead of hashing a password each."""
    passwords = Passwords(time_cost=2, memory_kib=19 * 1024)
    return [passwords.hash(password) for _ in range(size)]


def make_school_codes(rng: random.Random, schools: int) -> list[str]:
    return [DEMO_SCHOOL] + [f"{rng.choice(_REGIONS)}{i:03d}" for i in range(1, schools)]


def write_teachers(path: Path, schools: int, seed: int = 7) -> None:
    """Two teachers per school, password ``demo-teacher``; the demo school's first one is
    ``teacher-demo``."""
    rng = random.Random(seed)
    hashes = _hash_pool(DEMO_TEACHER_PASSWORD, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open(path) as fh:
        out = csv.writer(fh)
        out.writerow(TEACHER_COLUMNS)
        for code in make_school_codes(rng, schools):
            for n in (1, 2):
                username = DEMO_TEACHER if (code, n) == (DEMO_SCHOOL, 1) else f"t{code}-{n}"
                name = rng.choice(_SURNAMES) + rng.choice(_GIVEN) + "老师"
                out.writerow([username, name, code, rng.choice(hashes)])


def write_candidates(path: Path, count: int, schools: int, seed: int = 7) -> None:
    """Write ``count`` candidates; school sizes follow a Zipf-like skew. All share the demo
    password, each with its own salt drawn from a small pool (hashing is the slow part)."""
    rng = random.Random(seed)
    hashes = _hash_pool(DEMO_PASSWORD)
    school_codes = make_school_codes(rng, schools)
    cum = list(itertools.accumulate(1 / (rank + 1) ** 0.8 for rank in range(len(school_codes))))
    path.parent.mkdir(parents=True, exist_ok=True)
    scored = []
    for cid in _ids(rng, count):
        subjects = [
            rng.randint(40, 150),
            rng.randint(30, 150),
            rng.randint(40, 150),
            rng.randint(100, 300),
        ]
        scored.append((sum(subjects), cid, subjects))
    scored.sort(reverse=True)
    with _open(path) as fh:
        out = csv.writer(fh)
        out.writerow(COLUMNS)
        for rank, (total, cid, subjects) in enumerate(scored, start=1):
            school = (
                DEMO_SCHOOL
                if cid == DEMO_CANDIDATE
                else rng.choices(school_codes, cum_weights=cum)[0]
            )
            name = rng.choice(_SURNAMES) + "".join(rng.choices(_GIVEN, k=rng.randint(1, 2)))
            out.writerow([cid, name, school, rng.choice(hashes), total, rank, *subjects])
