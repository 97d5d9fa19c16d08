"""RocketMQ only (``make test-rocketmq``): saves as transactional half messages
(``VOLREG_ROCKETMQ_TRANSACTIONS``) on the real broker.

A committed save reaches consumers once; a save whose Redis commit is refused is rolled back
and never reaches MySQL; a half message left undecided by an API process killed between the
send and the commit is settled by the broker's check-back, in both directions. The broker
checks a half message once it is 6 s old, every 5 s (scripts/rocketmq.sh), so the tests
wait tens of seconds."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

import pytest

from schemas import messages
from schemas.http import parse_form
from schemas.records import FormKey, FormRecord
from service.core.errors import StoreUnavailable
from service.core.ids import make_id
from service.core.metrics import ConsumerMetrics
from service.core.names import names_of
from service.core.ports import Inbound
from service.core.settings import Settings
from service.forms.consumer import FormWriter
from service.forms.save import Forms
from service.forms.transactions import committed
from service.forms.windows import BatchWindows
from service.storage import rocket
from service.storage.mysql_parts import AnyDatabase
from service.storage.redis_cache import RedisCache
from tests.support import OPEN_BATCH, ROOT, choices, settings_env

pytestmark = pytest.mark.skipif(
    os.environ.get("VOLREG_TEST_BROKER") != "rocketmq", reason="RocketMQ only: make test-rocketmq"
)

# Past the broker's first check of a half message (6 s old, checked every 5 s), with room for
# a check sent to a producer that died and asked again at the next interval.
_CHECK_BACK_S = 45.0
# After a commit: long enough for a second delivery, were the check-back to commit it again.
_QUIET_S = 14.0


@dataclass
class Path:
    """A transactional save path on a prefix of its own: its broker answers check-backs from
    the real Redis and MySQL and records each question; a consumer writes MySQL."""

    settings: Settings
    broker: rocket.RocketBroker
    forms: Forms
    delivered: list[FormRecord] = field(default_factory=list)
    asked: list[tuple[int, bool | None]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, condition: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while True:
                self.changed.clear()
                if condition():
                    return
                await self.changed.wait()


class RefusingCache(RedisCache):
    """The real Redis, whose save commits are refused (as a timed-out or failed commit is)."""

    async def commit(self, record: FormRecord, idem: str | None, idem_result: str) -> bool:
        raise StoreUnavailable("commit refused (test)")


def fresh_key() -> FormKey:
    return FormKey(make_id(110105, "20060101", random.randrange(1000)), OPEN_BATCH)


@asynccontextmanager
async def transactional(base: Settings, db: AnyDatabase, cache: RedisCache) -> AsyncIterator[Path]:
    settings = dataclasses.replace(
        base,
        queue_prefix=f"{base.queue_prefix}-tx{uuid.uuid4().hex[:6]}",
        rocketmq_transactions=True,
    )
    names = names_of(settings)
    path: Path | None = None

    async def answer(record: FormRecord) -> bool | None:
        outcome = await committed(cache, db, record)
        assert path is not None
        path.asked.append((record.version, outcome))
        path.changed.set()
        return outcome

    async with rocket.open_broker(settings, names, answer) as broker:
        await broker.wait_connected(30)
        forms = Forms(cache, broker, db, BatchWindows(db, 60), halves=broker)
        path = Path(settings, broker, forms)
        writer = FormWriter(db, settings, ConsumerMetrics())

        async def deliver(delivery: Inbound) -> None:
            assert path is not None
            await writer.apply([delivery])
            path.delivered.append(messages.decode(delivery.headers, delivery.body))
            path.changed.set()

        await broker.consume(deliver)
        try:
            yield path
        finally:
            await rocket.delete_topology(settings, names)


async def test_a_committed_save_is_delivered_once(
    settings: Settings, db: AnyDatabase, cache: RedisCache
) -> None:
    async with transactional(settings, db, cache) as path:
        key = fresh_key()
        saved = await path.forms.save(
            key, parse_form({"choices": choices(2)}), None, datetime.now()
        )
        await path.wait_for(lambda: bool(path.delivered), 30)
        await asyncio.sleep(_QUIET_S)
        assert [r.version for r in path.delivered] == [saved.version]
        stored = await db.get_form(key)
        assert stored is not None and stored.version == saved.version
        assert path.asked == []  # committed at once: nothing for the broker to ask about


async def test_a_refused_redis_commit_is_rolled_back_and_never_reaches_mysql(
    settings: Settings, db: AnyDatabase, cache: RedisCache
) -> None:
    refusing = RefusingCache(cache.client, names_of(settings), settings)
    async with transactional(settings, db, cache) as path:
        forms = Forms(refusing, path.broker, db, BatchWindows(db, 60), halves=path.broker)
        key = fresh_key()
        with pytest.raises(StoreUnavailable):
            await forms.save(key, parse_form({"choices": choices(3)}), "refused-1", datetime.now())
        # Rolled back at once; a check-back, were it still undecided, would roll it back too.
        await asyncio.sleep(_QUIET_S)
        assert path.delivered == []
        assert await db.get_form(key) is None
        assert await cache.read(key) is None


async def _orphan(path: Path, mode: str, key: FormKey) -> int:
    """Run tests/rocket_orphan.py: it sends a half message and dies; its version."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.rocket_orphan",
        mode,
        key.candidate_id,
        key.batch,
        cwd=ROOT,
        env=settings_env(path.settings),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(child.communicate(), 90)
    assert child.returncode == -9, out
    line = out.decode().split()
    assert line[0] == "half", out
    return int(line[1])


async def test_an_orphan_whose_redis_commit_happened_is_delivered(
    settings: Settings, db: AnyDatabase, cache: RedisCache
) -> None:
    async with transactional(settings, db, cache) as path:
        key = fresh_key()
        version = await _orphan(path, "after-redis", key)
        held = await cache.read(key)
        assert held is not None and held.version == version  # visible: it must be delivered
        await path.wait_for(lambda: bool(path.delivered), _CHECK_BACK_S)
        assert (version, True) in path.asked
        assert [r.version for r in path.delivered] == [version]
        stored = await db.get_form(key)
        assert stored is not None and stored.version == version


async def test_an_orphan_whose_redis_commit_never_happened_is_never_delivered(
    settings: Settings, db: AnyDatabase, cache: RedisCache
) -> None:
    async with transactional(settings, db, cache) as path:
        key = fresh_key()
        version = await _orphan(path, "before-redis", key)
        assert await cache.read(key) is None  # never visible: it must never be delivered
        await path.wait_for(lambda: (version, False) in path.asked, _CHECK_BACK_S)
        await asyncio.sleep(_QUIET_S)  # a rollback is final: nothing comes later
        assert path.delivered == []
        assert await db.get_form(key) is None
