"""Filing, pure logic: progress arithmetic and history paging over fake tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from schemas.records import FormRecord
from schemas.sql_files import migrations
from service.core import codec
from service.filing.history import History
from service.filing.progress import Progress, counts


class _Counters:
    async def school_counts(self, batch: str, school: str) -> tuple[int, dict[str, int]]:
        return 5, {"saved": 2, "submitted": 1}

    async def province_counts(self, batch: str) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        candidates = {"100": 3, "200": 2, "300": 0}
        forms = {"100": {"saved": 1, "submitted": 1}, "200": {"saved": 2}, "": {"saved": 7}}
        return candidates, forms


def test_counts_never_go_negative() -> None:
    assert counts(3, {"saved": 1}) == {"candidates": 3, "none": 2, "saved": 1, "submitted": 0}
    assert counts(1, {"saved": 2, "submitted": -1})["none"] == 0


async def test_province_sums_schools_and_leaves_out_unknown_candidates() -> None:
    progress = Progress(_Counters())
    body = await progress.province("b")
    assert [s["school"] for s in body["schools"]] == ["100", "200", "300"]
    assert body["province"] == {"candidates": 5, "none": 1, "saved": 3, "submitted": 1}
    school = await progress.school("b", "100")
    assert school == {
        "batch": "b",
        "school": "100",
        "candidates": 5,
        "none": 2,
        "saved": 2,
        "submitted": 1,
    }


class _Saves:
    def __init__(self, versions: list[int]) -> None:
        self.rows = [
            (v, v, "saved", "127.0.0.1", f"r{v}", "c", "candidate", codec.pack([v]), None)
            for v in sorted(versions, reverse=True)
        ]

    async def record_saves(self, records: Sequence[FormRecord]) -> None:
        raise AssertionError("not used")

    async def history_page(
        self, candidate_id: str, batch: str, before: int, limit: int
    ) -> list[tuple[Any, ...]]:
        return [r for r in self.rows if r[0] < before][:limit]


async def test_history_pages_newest_first_to_the_end() -> None:
    history = History(_Saves([5, 9, 7]))
    first = await history.page("c", "b", None, 2)
    assert [e["version"] for e in first["entries"]] == [9, 7]
    assert first["entries"][0]["choices"] == [9] and first["entries"][0]["request_id"] == "r9"
    assert first["next_cursor"] == "7"
    rest = await history.page("c", "b", int(first["next_cursor"]), 2)
    assert [e["version"] for e in rest["entries"]] == [5] and rest["next_cursor"] is None


def test_migration_numbers_are_unique() -> None:
    """Two branches adding the same number would make `volreg migrate` fail on the second."""
    numbers = [number for number, _, _ in migrations()]
    assert len(numbers) == len(set(numbers)), numbers
