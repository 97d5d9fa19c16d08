"""Filing progress: how many candidates of a school (or of the province) have no form, a saved
one, or a submitted one in a batch. The counters are kept by the database as forms change, so
a request sums a few counter rows."""

from __future__ import annotations

from typing import Any, Protocol

from schemas.records import STATUS_SAVED, STATUS_SUBMITTED

STATUSES = (STATUS_SAVED, STATUS_SUBMITTED)
# Forms whose candidate is not (yet) imported are counted under no school.
NO_SCHOOL = ""


class ProgressTables(Protocol):
    async def school_counts(self, batch: str, school: str) -> tuple[int, dict[str, int]]:
        """(candidates of the school, forms by status)."""

    async def province_counts(self, batch: str) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        """(candidates by school, forms by school and status)."""


def counts(candidates: int, by_status: dict[str, int]) -> dict[str, int]:
    filed = {s: max(by_status.get(s, 0), 0) for s in STATUSES}
    return {"candidates": candidates, "none": max(candidates - sum(filed.values()), 0), **filed}


class Progress:
    def __init__(self, tables: ProgressTables) -> None:
        self._tables = tables

    async def school(self, batch: str, school: str) -> dict[str, Any]:
        candidates, by_status = await self._tables.school_counts(batch, school)
        return {"batch": batch, "school": school, **counts(candidates, by_status)}

    async def province(self, batch: str) -> dict[str, Any]:
        candidates, forms = await self._tables.province_counts(batch)
        schools = sorted((set(candidates) | set(forms)) - {NO_SCHOOL})
        per_school = {s: counts(candidates.get(s, 0), forms.get(s, {})) for s in schools}
        total = {status: sum(c[status] for c in per_school.values()) for status in STATUSES}
        province = counts(sum(c["candidates"] for c in per_school.values()), total)
        rows = [{"school": s, **c} for s, c in per_school.items()]
        return {"batch": batch, "province": province, "schools": rows}
