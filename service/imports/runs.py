"""Accepted import rows, sorted by key through temporary files (an external merge sort).

Rows written in key order fill MySQL's B-trees page after page; in file order (random IDs)
every row lands on another page, and once the tables outgrow the buffer pool each insert
costs disk reads and writes. Measured on a 1M-row file: see docs/import.md.
"""

from __future__ import annotations

import heapq
import os
import shutil
import tempfile
import time
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


_PREFIX = "volreg-import-"
# A directory is left behind only by an import killed before it could clean up (SIGKILL, a
# crash). Removed by the next import, once its process is gone and it has not changed for
# this long (a process of another PID namespace sharing the directory is still working).
ORPHAN_AGE_S = 600.0


def run_directory(stack: ExitStack) -> Path:
    """A private temporary directory, removed when ``stack`` closes. Directories that
    killed imports left behind are removed first."""
    remove_orphans(Path(tempfile.gettempdir()))
    prefix = f"{_PREFIX}{os.getpid()}-"
    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))


def remove_orphans(root: Path, min_age_s: float = ORPHAN_AGE_S) -> list[Path]:
    """Remove ``volreg-import-<pid>-*`` directories under ``root`` whose process has ended
    and which have not changed for ``min_age_s``; returns what was removed."""
    removed: list[Path] = []
    now = time.time()
    for path in root.glob(f"{_PREFIX}*-*"):
        pid = path.name[len(_PREFIX) :].partition("-")[0]
        try:
            young = now - path.stat().st_mtime < min_age_s
        except OSError:
            continue  # removed meanwhile
        if not pid.isdigit() or young or _alive(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
