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
