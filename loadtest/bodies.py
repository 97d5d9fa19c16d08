"""Request bodies and candidate picks for the generated wrk scripts."""

from __future__ import annotations

import itertools
import random
from typing import Any

CHOICES_PER_FORM = 16


Catalogue = list[tuple[str, list[str]]]  # (institution code, its major codes)


def synthetic_catalogue(size: int = 64, seed: int = 3) -> Catalogue:
    """Codes of the right shape, for deployments that do not check choices against a
    published catalogue."""
    rng = random.Random(seed)
    return [
        (f"{inst:05d}", [f"{m:06d}" for m in rng.sample(range(10101, 99999), 6)])
        for inst in rng.sample(range(10001, 99999), size)
    ]


def form_body(seed: int, catalogue: Catalogue, count: int = CHOICES_PER_FORM) -> dict[str, Any]:
    """A valid save body: up to ``count`` distinct institutions of the catalogue with 1-6 of
    their majors each."""
    rng = random.Random(seed)
    offered = [(code, majors) for code, majors in catalogue if majors]
    chosen = rng.sample(offered, min(count, len(offered)))
    return {
        "choices": [
            {
                "institution": code,
                "majors": rng.sample(majors, rng.randint(1, min(6, len(majors)))),
                "accept_adjustment": rng.random() < 0.5,
            }
            for code, majors in chosen
        ]
    }


def picks(count: int, length: int, zipf: bool, seed: int = 11, exponent: float = 1.1) -> list[int]:
    """A sequence of candidate indices (0-based) the script cycles through: a shuffled
    uniform spread, or Zipf-skewed so a few hot candidates get most requests."""
    rng = random.Random(seed)
    if not zipf:
        spread = list(itertools.islice(itertools.cycle(range(count)), length))
        rng.shuffle(spread)
        return spread
    order = list(range(count))
    rng.shuffle(order)  # which candidates are hot is random, not the first rows of the CSV
    weights = [1.0 / (rank + 1) ** exponent for rank in range(count)]
    return rng.choices(order, weights=weights, k=length)
