"""An API process that dies between a transactional half message and its commit (run by
tests/integration/test_rocketmq_transactions.py): it saves one form with the settings of its
environment and kills itself with SIGKILL either before the Redis commit (``before-redis``)
or after it (``after-redis``), so the half message is left to the broker's check-back.

    python -m tests.rocket_orphan before-redis|after-redis CANDIDATE_ID BATCH
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import datetime

from schemas.http import parse_form
from schemas.records import FormKey, FormRecord
from service.core.names import names_of
from service.core.ports import HalfMessage
from service.core.settings import Settings
from service.forms.save import Forms
from service.forms.windows import BatchWindows
from service.storage import rocket
from service.storage.mysql_parts import open_database
from service.storage.redis_cache import open_cache
from tests.support import choices

MODES = ("before-redis", "after-redis")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


async def _never_known(record: FormRecord) -> bool | None:
    return None  # this process never answers a check-back: it is about to die


class _Halves:
    """The real half messages; the process dies instead of committing one."""

    def __init__(self, broker: rocket.RocketBroker, mode: str) -> None:
        self._broker = broker
        self._mode = mode

    async def publish_half(self, record: FormRecord) -> HalfMessage:
        half = await self._broker.publish_half(record)
        print(f"half {record.version}", flush=True)
        if self._mode == "before-redis":
            _die()
        return _Dying(half)


class _Dying:
    def __init__(self, half: HalfMessage) -> None:
        self._half = half

    async def commit(self) -> None:
        _die()  # after the Redis commit, before the broker hears of it

    async def rollback(self) -> None:
        _die()


async def main(mode: str, candidate_id: str, batch: str) -> None:
    settings = Settings.from_env(os.environ)
    names = names_of(settings)
    async with (
        open_cache(settings, names) as cache,
        open_database(settings) as db,
        rocket.open_broker(settings, names, _never_known) as broker,
    ):
        await broker.wait_connected(60)
        forms = Forms(cache, broker, db, BatchWindows(db, 60), halves=_Halves(broker, mode))
        form = parse_form({"choices": choices(2)})
        await forms.save(FormKey(candidate_id, batch), form, None, datetime.now())
    raise SystemExit("the save returned: the process was to die before that")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in MODES:
        raise SystemExit(__doc__)
    asyncio.run(main(*sys.argv[1:]))
