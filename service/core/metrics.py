"""Prometheus metrics, one registry per process (no module-level singletons)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from service.core import names

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            names.METRIC_REQUESTS, "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            names.METRIC_LATENCY,
            "HTTP request latency",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.group_records = Histogram(
            names.METRIC_GROUP_RECORDS,
            "Saves per published broker message (group commit)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.group_flushes = Counter(
            names.METRIC_GROUP_FLUSHES,
            "Published batches by what closed them (idle: nothing was in flight)",
            ["reason"],
            registry=r,
        )
        self.confirm = Histogram(
            names.METRIC_CONFIRM,
            "From publishing a batch message to its broker confirm",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.group_wait = Histogram(
            names.METRIC_GROUP_WAIT,
            "Time a batch's first save waited for the batch to close",
            buckets=(0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01),
            registry=r,
        )
        self.mysql_commits = Counter(
            names.METRIC_MYSQL_COMMITS,
            "MySQL transactions committed to store forms, by writer",
            ["writer"],
            registry=r,
        )
        self.saves = Counter(names.METRIC_SAVES, "Form saves by outcome", ["outcome"], registry=r)
        self.consumed = Counter(
            names.METRIC_CONSUMED, "Messages applied to MySQL", ["outcome"], registry=r
        )
        self.dead_lettered = Counter(
            names.METRIC_DEAD_LETTERED, "Messages parked in the dead-letter queue", registry=r
        )
        self.batch_rows = Histogram(
            names.METRIC_CONSUME_BATCH,
            "Rows per consumer upsert",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000),
            registry=r,
        )
