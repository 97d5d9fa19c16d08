"""The import's sorted runs and the temporary directories killed imports leave behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from service.imports.runs import SortedRuns, remove_orphans, run_directory


def _ended_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _aged(path: Path, seconds: float) -> Path:
    path.mkdir()
    (path / "run-00000").write_bytes(b"x\n")
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_sorted_runs_merge_every_line_in_order(tmp_path: Path) -> None:
    runs = SortedRuns(tmp_path, run_lines=3)
    runs.add([b"5\n", b"1\n", b"4\n", b"2\n"])
    runs.add([b"3\n", b"0\n"])
    with ExitStack() as stack:
        assert list(runs.merged(stack)) == [b"%d\n" % i for i in range(6)]


def test_only_old_directories_of_ended_processes_are_removed(tmp_path: Path) -> None:
    dead = _ended_pid()
    orphan = _aged(tmp_path / f"volreg-import-{dead}-abc", 3600)
    young = _aged(tmp_path / f"volreg-import-{dead}-young", 5)
    living = _aged(tmp_path / f"volreg-import-{os.getpid()}-live", 3600)
    unnamed = _aged(tmp_path / "volreg-import-abcdef", 3600)  # no PID in its name
    other = _aged(tmp_path / f"other-{dead}-x", 3600)
    assert remove_orphans(tmp_path, min_age_s=600) == [orphan]
    assert not orphan.exists()
    assert young.exists() and living.exists() and unnamed.exists() and other.exists()


def test_run_directory_names_its_process_and_goes_with_the_stack() -> None:
    with ExitStack() as stack:
        path = run_directory(stack)
        assert path.name.startswith(f"volreg-import-{os.getpid()}-")
        assert path.is_dir()
    assert not path.exists()
