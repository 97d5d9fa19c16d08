"""The state of the machine a figure was measured on: CPUs, load, how busy they were."""

from __future__ import annotations

import os
import platform
import resource
from dataclasses import dataclass
from pathlib import Path


def describe() -> dict[str, object]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuWindow:
    """CPU use between ``start()`` and ``stop()``: the whole machine's, and that of the
    child processes reaped in between (the wrk runs: the load generator's own share)."""

    _busy: int = 0
    _total: int = 0
    _children: float = 0.0
    machine_busy: float = 0.0
    generator_cpu_s: float = 0.0

    def start(self) -> None:
        self._busy, self._total = _cpu_ticks()
        self._children = children_cpu_s()

    def stop(self) -> None:
        busy, total = _cpu_ticks()
        self.machine_busy = (busy - self._busy) / max(1, total - self._total)
        self.generator_cpu_s = children_cpu_s() - self._children


def tree_cpu_s(pid: int) -> float | None:
    """CPU seconds used so far by ``pid`` and its direct children (the API workers); None
    when the process is gone."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    found = False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        if int(stat.parent.name) == pid or int(fields[1]) == pid:
            found = True
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks if found else None
