"""Loads the SQL that lives in ``schemas/sql``: ordered migrations and named queries."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_MIGRATION = re.compile(r"^(\d{3})_[\w-]+\.sql$")


def migrations() -> list[tuple[int, str, list[str]]]:
    """(number, file name, statements) for every migration file, in order."""
    out = []
    for entry in resources.files("schemas").joinpath("sql").iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            out.append((int(match.group(1)), entry.name, _statements(entry.read_text())))
    return sorted(out)


def _statements(text: str) -> list[str]:
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


@cache
def query(name: str) -> str:
    """The named query from queries.sql, without its comment lines."""
    text = resources.files("schemas").joinpath("sql/queries.sql").read_text()
    for block in re.split(r"^-- name: ", text, flags=re.M)[1:]:
        head, _, body = block.partition("\n")
        if head.strip() == name:
            return "\n".join(ln for ln in body.splitlines() if not ln.startswith("--")).strip()
    raise KeyError(name)


def multi_row(name: str, rows: int, columns: int) -> str:
    """A named multi-row statement with ``rows`` placeholder groups of ``columns`` values."""
    group = "(" + ", ".join(["%s"] * columns) + ")"
    return query(name).replace("{rows}", ", ".join([group] * rows))
