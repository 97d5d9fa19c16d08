"""What teachers see: their school's candidates with the filing status of each batch."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Protocol

from service.accounts.login import ROLE_ADMIN, ROLE_TEACHER
from service.core.errors import Forbidden, ValidationFailed
from service.core.ports import Candidate
from service.forms.save import iso_us

FILINGS = ("", "filed", "unfiled")
PAGE_MAX = 200


class SchoolTables(Protocol):
    async def school_page(
        self, school: str, filing: str, batch: str, after: str, limit: int
    ) -> list[dict[str, Any]]: ...


class CandidateLookup(Protocol):
    async def get_candidate(self, candidate_id: str) -> Candidate | None: ...


def encode_cursor(candidate_id: str) -> str:
    return base64.urlsafe_b64encode(candidate_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        value = ""
    if not value.isascii() or not value.isalnum() or len(value) > 18:
        message = "not a cursor from this API"
        raise ValidationFailed(
            f"query.cursor: {message}", details=[{"path": "query.cursor", "message": message}]
        )
    return value


class Schools:
    def __init__(self, tables: SchoolTables, candidates: CandidateLookup) -> None:
        self._tables = tables
        self._candidates = candidates

    @staticmethod
    def require_school(role: str, own_school: str, school: str) -> None:
        """Teachers reach their own school only; admins every school."""
        if role == ROLE_ADMIN or (role == ROLE_TEACHER and own_school == school):
            return
        raise Forbidden("this token does not reach that school")

    async def require_reader(self, own_school: str, candidate_id: str) -> None:
        """A teacher may read a candidate of their own school. An unknown ID gets the same
        answer as another school's candidate: else teachers could probe the province's IDs."""
        candidate = await self._candidates.get_candidate(candidate_id)
        if candidate is None or candidate.school_code != own_school:
            raise Forbidden("no candidate of your school has this ID")

    async def page(
        self, school: str, filing: str, batch: str, cursor: str, limit: int
    ) -> dict[str, Any]:
        after = decode_cursor(cursor) if cursor else ""
        rows = await self._tables.school_page(school, filing, batch, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        for row in rows:
            for form in row["forms"].values():
                form["updated_at"] = iso_us(form.pop("updated_us"))
        return {
            "school": school,
            "candidates": rows,
            "next_cursor": encode_cursor(rows[-1]["candidate_id"]) if more and rows else None,
        }
