"""Accepted import rows, sorted by key through temporary files (an external merge sort).

Rows written in key order fill MySQL's B-trees page after page; in file order (random IDs)
every row lands on another page, and once the tables outgrow the buffer pool each insert
costs disk reads and writes. Measured on a 1M-row file: see docs/import.md.
"""

from __future__ import annotations

import heapq
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO


class SortedRuns:
    """``add`` lines; every ``run_lines`` lines are sorted and written to a run file in
    ``directory``; ``merged`` yields all lines in order. Not thread-safe: one caller at a
    time (the import's reader, then its loader)."""

    def __init__(self, directory: Path, run_lines: int) -> None:
        self._directory = directory
        self._run_lines = run_lines
        self._buffer: list[bytes] = []
        self._runs: list[Path] = []
        self.count = 0

    def add(self, lines: list[bytes]) -> None:
        self._buffer += lines
        self.count += len(lines)
        if len(self._buffer) >= self._run_lines:
            self._spill()

    def _spill(self) -> None:
        if not self._buffer:
            return
        self._buffer.sort()
        path = self._directory / f"run-{len(self._runs):05d}"
        with path.open("wb") as fh:
            fh.writelines(self._buffer)
        self._runs.append(path)
        self._buffer = []

    def merged(self, stack: ExitStack) -> Iterator[bytes]:
        """Every line added, in order; the run files stay open until ``stack`` closes."""
        self._spill()
        files: list[IO[bytes]] = [
            stack.enter_context(path.open("rb", buffering=1 << 20)) for path in self._runs
        ]
        return heapq.merge(*files)


def run_directory(stack: ExitStack) -> Path:
    """A private temporary directory, removed when ``stack`` closes."""
    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="volreg-import-")))
