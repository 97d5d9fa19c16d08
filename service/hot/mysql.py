"""Hot-item minute totals in MySQL, on the database that holds the unsplit tables."""

from __future__ import annotations

from collections.abc import Sequence

from schemas import hot
from schemas.sql_files import multi_row, query
from service.core.errors import RecordRejected
from service.storage.mysql_parts import AnyDatabase, home_of

_DUPLICATE_KEY = 1062
# Reading every minute total for a rebuild may take longer than one query's timeout.
_SNAPSHOT_TIMEOUT_S = 300.0


class HotTables:
    def __init__(self, db: AnyDatabase) -> None:
        self._db = home_of(db)

    async def add(self, message_id: str, rows: Sequence[hot.HotRow]) -> bool:
        """Add the rows' counts unless this message was added before (then False)."""
        steps: list[tuple[str, Sequence[object]]] = [(query("hot_message_applied"), [message_id])]
        if rows:
            args = [v for r in rows for v in (r.minute, r.batch, r.kind, r.item, r.count)]
            steps.append((multi_row("hot_add_minutes", len(rows), 5), args))
        try:
            await self._db.transaction(steps)
        except RecordRejected as exc:
            cause = exc.__cause__
            if cause is not None and cause.args and cause.args[0] == _DUPLICATE_KEY:
                return False
            raise
        return True

    async def snapshot(self, page: int) -> tuple[list[str], list[hot.HotRow]]:
        """The applied message ids and every minute total, read from one consistent snapshot
        (a message's rows and its id are added in one transaction: each message is in both
        or in neither), paged by ``page`` rows."""
        async with self._db.snapshot(_SNAPSHOT_TIMEOUT_S) as fetch:
            ids = [str(r[0]) for r in await fetch("hot_message_ids")]
            rows: list[hot.HotRow] = []
            after: tuple[int, str, str, str] = (0, "", "", "")
            while True:
                found = await fetch("hot_minutes_page", *after, page)
                rows += [hot.HotRow(int(r[0]), r[1], r[2], r[3], int(r[4])) for r in found]
                if len(found) < page:
                    return ids, rows
                last = rows[-1]
                after = (last.minute, last.batch, last.kind, last.item)

    async def prune(self) -> None:
        await self._db.execute("hot_prune_messages")
