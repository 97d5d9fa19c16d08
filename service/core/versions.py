"""Bounds on form versions and a check of a stored form, applied wherever one crosses a
trust boundary (a broker message, a Redis copy headed for MySQL)."""

from __future__ import annotations

from schemas.http import Problem, parse_form
from schemas.records import STATUS_SAVED, FormRecord
from service.core import codec

# Lua numbers are doubles: from 2^53 on, version + 1 == version and compare-and-set breaks.
# stage.lua and commit.lua use the same bound.
VERSION_LIMIT = 2**53


def version_problem(version: int, now_us: int, max_ahead_us: int) -> str | None:
    """Why ``version`` (µs since the epoch, Redis clock) is no version we could have issued."""
    if version <= 0:
        return f"version {version} is not positive"
    if version >= VERSION_LIMIT:
        return f"version {version} is not below 2^53"
    if version > now_us + max_ahead_us:
        return f"version {version} is more than {max_ahead_us // 1_000_000} s ahead of the clock"
    return None


def form_problem(record: FormRecord, now_us: int, max_ahead_us: int) -> str | None:
    """Why ``record`` is not a form a save could have produced (None: it is)."""
    problem = version_problem(record.version, now_us, max_ahead_us)
    if problem:
        return problem
    if record.status != STATUS_SAVED:
        return f"unknown status {record.status!r}"
    try:
        parse_form({"choices": codec.unpack(record.payload)})
    except Problem as exc:
        return f"choices do not match the schema: {exc}"
    except ValueError as exc:
        return f"payload does not inflate to JSON: {exc}"
    return None
