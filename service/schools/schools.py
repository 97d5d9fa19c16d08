"""What teachers see: their school's candidates with the filing status of each batch."""

from __future__ import annotations

from typing import Any, Protocol

from service.accounts.login import ROLE_ADMIN, ROLE_TEACHER
from service.core.errors import Forbidden, ValidationFailed
from service.core.ids import ID_SHAPE
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
    """A page's ``next_cursor``: the last candidate ID it lists (the next page starts after
    it). Any ID-shaped cursor is a position in candidate-ID order, so none is refused for
    not having come from this API."""
    return candidate_id


def decode_cursor(cursor: str) -> str:
    if not ID_SHAPE.fullmatch(cursor):
        message = "a candidate ID (next_cursor of the previous page)"
        raise ValidationFailed(
            f"query.cursor: {message}", details=[{"path": "query.cursor", "message": message}]
        )
    return cursor


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
