"""Filing tables in MySQL: progress counters (summed over every database of a shard map)."""

from __future__ import annotations

from service.storage.mysql_parts import AnyDatabase, parts_of


class FilingTables:
    def __init__(self, db: AnyDatabase) -> None:
        self._db = db

    async def school_counts(self, batch: str, school: str) -> tuple[int, dict[str, int]]:
        candidates = 0
        by_status: dict[str, int] = {}
        for part in parts_of(self._db):
            row = await part.fetch_one("progress_school_candidates", school)
            candidates += int(row[0]) if row else 0
            for status, n in await part.fetch_all("progress_school_forms", batch, school):
                by_status[status] = by_status.get(status, 0) + int(n)
        return candidates, by_status

    async def province_counts(self, batch: str) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        candidates: dict[str, int] = {}
        forms: dict[str, dict[str, int]] = {}
        for part in parts_of(self._db):
            for school, n in await part.fetch_all("progress_candidates"):
                candidates[school] = candidates.get(school, 0) + int(n)
            for school, status, n in await part.fetch_all("progress_forms", batch):
                by_status = forms.setdefault(school, {})
                by_status[status] = by_status.get(status, 0) + int(n)
        return candidates, forms
