"""Runs wrk (one short run per time slice) and parses what the script's ``done()`` prints."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path

import orjson

from loadtest.luagen import GRID, MARKER

INSTALL_HINT = "wrk is not installed: `apt-get install wrk` (or `make deps`, which installs it)"
# wrk itself stops after the run's duration; this only guards against a hung process.
_EXTRA_WAIT_S = 30.0


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed no summary."""


@dataclass(frozen=True, slots=True)
class WrkRun:
    """One wrk run (a time slice of a scenario); latencies in milliseconds."""

    runtime_s: float
    requests: int
    errors: dict[str, int]
    latency_min_ms: float
    latency_max_ms: float
    latency_mean_ms: float
    grid_ms: tuple[float, ...]  # the latency at each percentile of ``luagen.GRID``

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def rps(self) -> float:
        return self.requests / self.runtime_s if self.runtime_s > 0 else 0.0

    def percentile(self, p: float) -> float:
        return self.grid_ms[GRID.index(p)]


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkError(INSTALL_HINT)
    return path


def parse(stdout: str) -> WrkRun:
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            data = orjson.loads(line[len(MARKER) :])
            lat = data["latency_us"]
            return WrkRun(
                runtime_s=data["runtime_us"] / 1e6,
                requests=int(data["requests"]),
                errors={k: int(v) for k, v in data["errors"].items()},
                latency_min_ms=lat["min"] / 1000,
                latency_max_ms=lat["max"] / 1000,
                latency_mean_ms=lat["mean"] / 1000,
                grid_ms=tuple(v / 1000 for v in lat["grid"]),
            )
    raise WrkError(f"wrk printed no summary line; its output was:\n{stdout[-2000:]}")


async def run(
    url: str, script: Path, seconds: int, connections: int, threads: int, timeout_s: float
) -> WrkRun:
    """One wrk run of ``seconds`` against ``url`` with the generated ``script``."""
    proc = await asyncio.create_subprocess_exec(
        wrk_binary(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "-s",
        str(script),
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(seconds + _EXTRA_WAIT_S):
            out, _ = await proc.communicate()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise WrkError(f"wrk exited with {proc.returncode}:\n{text[-2000:]}")
    return parse(text)
