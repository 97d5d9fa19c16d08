"""Test data of the staff, catalogue and import features: the catalogue that the shared
save-path tests choose from, staff accounts, small CSV files."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Sequence
from typing import Any

from aiohttp.test_utils import TestClient

from schemas import urls
from schemas.http import InstitutionBody, MajorBody
from service.accounts.login import StaffAccount
from service.accounts.mysql import StaffTables
from service.catalogue.mysql import CatalogueTables
from service.core.passwords import Passwords
from service.core.settings import Settings
from service.imports.columns import COLUMNS, TEACHER_COLUMNS

ADMIN = "admin-t"
TEACHER = "teacher-t"
OTHER_TEACHER = "teacher-other"
STAFF_PASSWORD = "staff-password"
SCHOOL = "110105001"  # the school of DEMO_ID and OTHER_ID
OTHER_SCHOOL = "310104002"
# tests/support.choices picks institutions 10001.. and majors 080901..080990.
INSTITUTIONS = [f"{10001 + i:05d}" for i in range(96)]
MAJORS = [f"{80901 + j:06d}" for j in range(90)]


async def seed_catalogue(db: Any) -> None:
    """Every institution the shared tests choose, each offering every major they choose."""
    majors = [MajorBody(code=m, name=f"Major {m}") for m in MAJORS]
    await CatalogueTables(db).put_institutions(
        [(code, InstitutionBody(name=f"University {code}", majors=majors)) for code in INSTITUTIONS]
    )


async def seed_staff(db: Any, settings: Settings) -> None:
    hashed = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib).hash(STAFF_PASSWORD)
    await StaffTables(db).upsert_staff(
        [
            StaffAccount(ADMIN, "admin", "", "Admin", hashed),
            StaffAccount(TEACHER, "teacher", SCHOOL, "Teacher", hashed),
            StaffAccount(OTHER_TEACHER, "teacher", OTHER_SCHOOL, "Other", hashed),
        ]
    )


async def staff_login(client: TestClient[Any, Any], username: str) -> dict[str, str]:
    resp = await client.post(urls.LOGIN, json={"username": username, "password": STAFF_PASSWORD})
    assert resp.status == 200, await resp.text()
    return {"Authorization": f"Bearer {(await resp.json())['token']}"}


def candidates_csv(rows: Sequence[Sequence[Any]], header: Sequence[str] = COLUMNS) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def teachers_csv(rows: Sequence[Sequence[Any]]) -> bytes:
    return candidates_csv(rows, TEACHER_COLUMNS)


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)
