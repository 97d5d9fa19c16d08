"""The last reconcile run, from the database the reconciler records its runs in."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from service.storage.mysql_parts import AnyDatabase, home_of

_FIELDS = (
    "mode",
    "shard",
    "outcome",
    "started_at",
    "duration_ms",
    "checked",
    "drifted",
    "repaired_redis",
    "repaired_mysql",
    "unrepaired",
    "in_grace",
    "error",
)


class ConsoleTables:
    def __init__(self, db: AnyDatabase) -> None:
        self._db = home_of(db)

    async def last_reconcile(self) -> dict[str, Any] | None:
        row = await self._db.fetch_one("console_last_reconcile")
        if row is None:
            return None
        run = dict(zip(_FIELDS, row, strict=True))
        if isinstance(run["started_at"], datetime):
            run["started_at"] = run["started_at"].astimezone().isoformat()
        return run
