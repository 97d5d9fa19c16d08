"""The unit tier: the API on in-memory fakes of every port (service.main.fakes), no server.

The fixtures have the names and the seed data of tests/conftest.py (the same candidates,
batches, exam results, catalogue and staff), so a test of pure logic runs here unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from schemas.http import InstitutionBody, MajorBody
from service.accounts.login import StaffAccount
from service.core.passwords import Passwords
from service.core.ports import Batch
from service.core.settings import Settings
from service.main.fakes import InMemory
from service.main.wiring import create_app
from tests.conftest import ClientFactory
from tests.staff_support import (
    ADMIN,
    INSTITUTIONS,
    MAJORS,
    OTHER_SCHOOL,
    OTHER_TEACHER,
    SCHOOL,
    STAFF_PASSWORD,
    TEACHER,
)
from tests.support import CLOSED_BATCH, DEMO_ID, OPEN_BATCH, OTHER_ID, PASSWORD, make_settings

# Nothing listens on the discard port: a test that reached for a real server would fail at once
# instead of using whatever runs on the standard ports.
CLOSED = {
    "redis_url": "redis://127.0.0.1:9/0",
    "mysql_dsn": "mysql://volreg:unit@127.0.0.1:9/volreg_unit",
    "amqp_url": "amqp://volreg:unit@127.0.0.1:9/volreg",
}


def unit_settings(**overrides: Any) -> Settings:
    return make_settings(**{**CLOSED, **overrides})


# Hashing is the slow part of seeding: once per session.
_HASHES: dict[str, str] = {}


def _hash(settings: Settings, password: str) -> str:
    if password not in _HASHES:
        passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib)
        _HASHES[password] = passwords.hash(password)
    return _HASHES[password]


@pytest.fixture(scope="session")
def settings() -> Settings:
    return unit_settings()


@pytest.fixture
async def fakes(settings: Settings) -> InMemory:
    """Fresh in-memory servers per test, seeded like the integration tier's."""
    fake = InMemory()
    now = datetime.now()
    await fake.db.upsert_batch(
        Batch(OPEN_BATCH, "Undergraduate, first", now - timedelta(days=1), now + timedelta(days=30))
    )
    await fake.db.upsert_batch(
        Batch(CLOSED_BATCH, "Closed", now - timedelta(days=30), now - timedelta(days=1))
    )
    hashed = _hash(settings, PASSWORD)
    await fake.db.upsert_candidates(
        [(DEMO_ID, "Demo", SCHOOL, hashed), (OTHER_ID, "Other", SCHOOL, hashed)]
    )
    await fake.db.upsert_exams(
        {
            DEMO_ID: {
                "total_score": 612.5,
                "rank": 1024,
                "subjects": {"chinese": 120, "math": 140, "english": 130, "elective": 222.5},
            }
        }
    )
    majors = [MajorBody(code=m, name=f"Major {m}") for m in MAJORS]
    await fake.catalogue.put_institutions(
        [(code, InstitutionBody(name=f"University {code}", majors=majors)) for code in INSTITUTIONS]
    )
    staff_hash = _hash(settings, STAFF_PASSWORD)
    await fake.staff.upsert_staff(
        [
            StaffAccount(ADMIN, "admin", "", "Admin", staff_hash),
            StaffAccount(TEACHER, "teacher", SCHOOL, "Teacher", staff_hash),
            StaffAccount(OTHER_TEACHER, "teacher", OTHER_SCHOOL, "Other", staff_hash),
        ]
    )
    return fake


@pytest.fixture
async def make_client(settings: Settings, fakes: InMemory) -> AsyncIterator[ClientFactory]:
    """An API on the test's fakes (with settings overrides); ``wait_broker`` is accepted for
    the integration tier's signature: the fake broker is up at once."""
    clients: list[TestClient[Any, Any]] = []

    async def make(wait_broker: bool = True, **overrides: Any) -> TestClient[Any, Any]:
        s = unit_settings(**overrides) if overrides else settings
        client = TestClient(TestServer(create_app(s, fakes.adapters())))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def api(make_client: ClientFactory) -> TestClient[Any, Any]:
    return await make_client()
