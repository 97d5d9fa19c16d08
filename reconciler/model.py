"""Values the reconciler works with: version stamps, verdicts and the report of a run."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

MODE_FULL = "full"
MODE_INCREMENTAL = "incremental"
OUTCOME_OK = "ok"
OUTCOME_DRIFT = "drift"  # unrepaired drift remains
OUTCOME_FAILED = "failed"  # a dependency failed mid-run


@dataclass(frozen=True, slots=True)
class Stamp:
    """The version of a form on one side and when that version was saved (µs, Redis clock)."""

    version: int
    updated_us: int


class Verdict(enum.Enum):
    SAME = "same"
    REDIS_STALE = "redis_stale"  # MySQL holds a newer version: fill Redis
    MYSQL_STALE = "mysql_stale"  # Redis newer beyond the grace period: upsert into MySQL
    IN_GRACE = "in_grace"  # Redis newer, but its message may still be on its way


def judge(redis: Stamp | None, mysql: Stamp | None, now_us: int, grace_us: int) -> Verdict:
    """Compare one form's two copies; the newer version wins."""
    r = redis.version if redis else 0
    m = mysql.version if mysql else 0
    if r == m:
        return Verdict.SAME
    if m > r:
        # Also while a save's Redis commit is still under way: filling the same version
        # first is harmless, the commit then finds it already there.
        return Verdict.REDIS_STALE
    assert redis is not None
    if redis.updated_us > now_us - grace_us:
        return Verdict.IN_GRACE
    return Verdict.MYSQL_STALE


@dataclass(slots=True)
class RunReport:
    mode: str
    shard: int | None
    started_at: datetime
    outcome: str = OUTCOME_OK
    duration_s: float = 0.0
    checked: int = 0
    drifted: int = 0
    repaired_redis: int = 0
    repaired_mysql: int = 0
    unrepaired: int = 0
    in_grace: int = 0
    # Where the next incremental run starts (MySQL clock, Redis clock).
    mysql_mark: datetime | None = None
    redis_mark_us: int | None = None
    error: str | None = None
    unrepaired_keys: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["started_at"] = self.started_at.isoformat()
        out["mysql_mark"] = self.mysql_mark.isoformat() if self.mysql_mark else None
        out["duration_s"] = round(self.duration_s, 3)
        return out
