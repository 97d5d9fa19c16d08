"""Merging the per-slice wrk runs of a scenario into one summary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from loadtest.luagen import GRID
from loadtest.wrk import WrkRun

REPORTED = {"p50": 50.0, "p90": 90.0, "p99": 99.0}


@dataclass(frozen=True, slots=True)
class Merged:
    requests: int
    runtime_s: float
    errors: dict[str, int]
    latency_ms: dict[str, float]  # p50, p90, p99, max, mean

    @property
    def rps(self) -> float:
        return self.requests / self.runtime_s if self.runtime_s > 0 else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def merge(runs: Sequence[WrkRun]) -> Merged:
    """Counts add up exactly. Percentiles of the whole come from the mixture of the runs'
    latency distributions, each known on the percentile grid (accurate to the grid step:
    1 point below p99, 0.1 up to p99.9)."""
    requests = sum(r.requests for r in runs)
    errors: dict[str, int] = {}
    for r in runs:
        for k, v in r.errors.items():
            errors[k] = errors.get(k, 0) + v
    latency = {name: mixture_percentile(runs, p) for name, p in REPORTED.items()}
    latency["max"] = max((r.latency_max_ms for r in runs), default=0.0)
    latency["mean"] = (
        sum(r.latency_mean_ms * r.requests for r in runs) / requests if requests else 0.0
    )
    return Merged(requests, sum(r.runtime_s for r in runs), errors, latency)


def mixture_percentile(runs: Sequence[WrkRun], p: float) -> float:
    # Each grid point stands for the slice of requests between it and the previous point.
    points: list[tuple[float, float]] = []
    for r in runs:
        previous = 0.0
        for q, value in zip(GRID, r.grid_ms, strict=True):
            points.append((value, r.requests * (q - previous) / 100))
            previous = q
    total = sum(w for _, w in points)
    if total <= 0:
        return 0.0
    points.sort()
    cumulative = 0.0
    for value, weight in points:
        cumulative += weight
        if cumulative >= total * p / 100 - 1e-9:
            return value
    return points[-1][0]
