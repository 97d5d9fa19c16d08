"""Prometheus metrics, one registry per process (no module-level singletons).

``volreg serve --workers N`` runs prometheus_client's multiprocess mode (the runner sets
``PROMETHEUS_MULTIPROC_DIR`` before the workers start): each worker writes its values to
files there and any worker's /metrics sums them, so a scrape sees the whole server."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from service.core import names

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# From a save to its row in MySQL: milliseconds normally, minutes while MySQL is down.
_DELAY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 1800.0)


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    if not multiprocess():  # per-process figures mean nothing summed over workers
        ProcessCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The text a scrape gets: this registry, or every worker's values in multiprocess mode."""
    if multiprocess():
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return generate_latest(merged), CONTENT_TYPE_LATEST
    return generate_latest(registry), CONTENT_TYPE_LATEST


class Metrics:
    """The API's."""

    def __init__(self) -> None:
        self.registry = _registry()
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
        self.save_stage = Histogram(
            names.METRIC_SAVE_STAGE,
            "Save steps: stage (Redis), publish (until the broker's confirm), commit (Redis)",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        # 1 when the dependency answered this process's last probe (every few seconds).
        self.dependency_up = Gauge(
            names.METRIC_DEPENDENCY_UP,
            "Whether a dependency answered the last probe",
            ["dependency"],
            multiprocess_mode="livemin",
            registry=r,
        )


class ConsumerMetrics:
    """The consumer's, on its own port (VOLREG_CONSUMER_HTTP_PORT)."""

    def __init__(self) -> None:
        self.registry = _registry()
        r = self.registry
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
        self.mysql_commits = Counter(
            names.METRIC_MYSQL_COMMITS,
            "MySQL transactions committed to store forms, by writer",
            ["writer"],
            registry=r,
        )
        self.upsert = Histogram(
            names.METRIC_CONSUME_UPSERT,
            "One batch's upsert (the MySQL commit), retries included",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.history = Histogram(
            names.METRIC_CONSUME_HISTORY,
            "One batch's save-history insert, retries included",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.delay = Histogram(
            names.METRIC_CONSUME_DELAY,
            "From a save (its version's time) to its row committed in MySQL",
            buckets=_DELAY_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            names.METRIC_CONSUMER_LAG,
            "Age of the oldest save in the last batch committed to MySQL",
            registry=r,
        )
        self.queue_messages = Gauge(
            names.METRIC_QUEUE_MESSAGES,
            "Messages ready in each form queue (unacked deliveries not counted)",
            ["queue"],
            registry=r,
        )
        self.dead_letter_messages = Gauge(
            names.METRIC_DEAD_LETTER_MESSAGES,
            "Messages waiting in the dead-letter queue",
            registry=r,
        )
