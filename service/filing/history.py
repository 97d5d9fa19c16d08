"""The save history of a form: every acknowledged save and submission with who sent it, when
and from where, newest first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from schemas.records import FormRecord
from service.core import codec
from service.forms.save import iso_us

PAGE_MAX = 100
# Versions are Redis TIME in µs: anything real is below this.
_NEWEST = 2**63 - 1


class HistoryTables(Protocol):
    async def record_saves(self, records: Sequence[FormRecord]) -> None: ...

    async def history_page(
        self, candidate_id: str, batch: str, before: int, limit: int
    ) -> list[tuple[Any, ...]]: ...


class History:
    def __init__(self, tables: HistoryTables) -> None:
        self._tables = tables

    async def page(
        self, candidate_id: str, batch: str, before: int | None, limit: int
    ) -> dict[str, Any]:
        rows = await self._tables.history_page(candidate_id, batch, before or _NEWEST, limit + 1)
        more = len(rows) > limit
        entries = [_entry(row) for row in rows[:limit]]
        return {
            "candidate_id": candidate_id,
            "batch": batch,
            "entries": entries,
            "next_cursor": str(entries[-1]["version"]) if more and entries else None,
        }


def _entry(row: tuple[Any, ...]) -> dict[str, Any]:
    version, updated_us, status, client, request_id, subject, role, choices, recorded = row
    recorded_at = recorded.astimezone().isoformat() if isinstance(recorded, datetime) else None
    return {
        "version": int(version),
        "saved_at": iso_us(int(updated_us)),
        "recorded_at": recorded_at,
        "status": status,
        "choices": codec.unpack(bytes(choices)),
        "client": client,
        "request_id": request_id,
        "subject": subject,
        "role": role,
    }
