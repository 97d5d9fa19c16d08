"""Prometheus metrics, one registry per process (no module-level singletons).

``volreg serve --workers N`` runs prometheus_client's multiprocess mode (the runner sets
``PROMETHEUS_MULTIPROC_DIR`` before the workers start): each worker writes its values to
files there and any worker's /metrics sums them, so a scrape sees the whole server."""

from __future__ import annotations

import os
from collections.abc import Sequence

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
from service.core.local_cache import CacheStats

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


class Family:
    """Builds one registry's metrics: the construction every metrics class shares."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(name, doc, labels, registry=self.registry)

    def gauge(self, name: str, doc: str, labels: Sequence[str] = (), mode: str = "all") -> Gauge:
        # mode: how multiprocess mode merges the workers' values (ignored otherwise).
        return Gauge(name, doc, labels, multiprocess_mode=mode, registry=self.registry)  # type: ignore[arg-type]

    def histogram(
        self, name: str, doc: str, buckets: Sequence[float], labels: Sequence[str] = ()
    ) -> Histogram:
        return Histogram(name, doc, labels, buckets=buckets, registry=self.registry)

    def form_commits(self) -> Counter:
        """Shared by the API (its writers) and the consumer: same name, same meaning."""
        return self.counter(
            names.METRIC_MYSQL_COMMITS,
            "MySQL transactions committed to store forms, by writer",
            ["writer"],
        )


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
        f = Family(self.registry)
        self.requests = f.counter(
            names.METRIC_REQUESTS, "HTTP requests", ["route", "method", "status"]
        )
        self.latency = f.histogram(
            names.METRIC_LATENCY, "HTTP request latency", _LATENCY_BUCKETS, ["route"]
        )
        self.group_records = f.histogram(
            names.METRIC_GROUP_RECORDS,
            "Saves per published broker message (group commit)",
            (1, 2, 4, 8, 16, 32, 64, 128),
        )
        self.group_flushes = f.counter(
            names.METRIC_GROUP_FLUSHES,
            "Published batches by what closed them (idle: nothing was in flight)",
            ["reason"],
        )
        self.confirm = f.histogram(
            names.METRIC_CONFIRM,
            "From publishing a batch message to its broker confirm",
            (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
        )
        self.group_wait = f.histogram(
            names.METRIC_GROUP_WAIT,
            "Time a batch's first save waited for the batch to close",
            (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01),
        )
        self.mysql_commits = f.form_commits()
        self.saves = f.counter(names.METRIC_SAVES, "Form saves by outcome", ["outcome"])
        self.save_stage = f.histogram(
            names.METRIC_SAVE_STAGE,
            "Save steps: stage (Redis), publish (until the broker's confirm), commit (Redis)",
            _LATENCY_BUCKETS,
            ["stage"],
        )
        # 1 when the dependency answered this process's last probe (every few seconds).
        self.dependency_up = f.gauge(
            names.METRIC_DEPENDENCY_UP,
            "Whether a dependency answered the last probe",
            ["dependency"],
            mode="livemin",
        )
        self.login_failures = f.counter(
            names.METRIC_LOGIN_FAILURES,
            "Refused logins by account kind (candidate, staff) and reason (the error code)",
            ["kind", "reason"],
        )
        self.cache_hits = f.counter(
            names.METRIC_CACHE_HITS, "Per-process cache lookups answered from memory", ["cache"]
        )
        self.cache_misses = f.counter(
            names.METRIC_CACHE_MISSES,
            "Per-process cache lookups that loaded (from Redis or MySQL), by cache",
            ["cache"],
        )
        # The per-process caches by name; their tallies are plain integers on the lookup path
        # and reach the counters in refresh() (with the dependency probes, and on a scrape).
        self.caches: dict[str, CacheStats] = {}
        self._cache_seen: dict[str, tuple[int, int]] = {}

    def refresh(self) -> None:
        """Bring the cache counters up to date with the caches' own tallies."""
        for cache, stats in self.caches.items():
            hits, misses = stats.hits, stats.loads
            seen_hits, seen_misses = self._cache_seen.get(cache, (0, 0))
            if hits > seen_hits:
                self.cache_hits.labels(cache).inc(hits - seen_hits)
            if misses > seen_misses:
                self.cache_misses.labels(cache).inc(misses - seen_misses)
            self._cache_seen[cache] = (hits, misses)


class ConsumerMetrics:
    """The consumer's, on its own port (VOLREG_CONSUMER_HTTP_PORT)."""

    def __init__(self) -> None:
        self.registry = _registry()
        f = Family(self.registry)
        self.consumed = f.counter(names.METRIC_CONSUMED, "Messages applied to MySQL", ["outcome"])
        self.dead_lettered = f.counter(
            names.METRIC_DEAD_LETTERED, "Messages parked in the dead-letter queue"
        )
        self.batch_rows = f.histogram(
            names.METRIC_CONSUME_BATCH,
            "Rows per consumer upsert",
            (1, 10, 50, 100, 250, 500, 1000, 2000),
        )
        self.mysql_commits = f.form_commits()
        self.upsert = f.histogram(
            names.METRIC_CONSUME_UPSERT,
            "One batch's upsert (the MySQL commit), retries included",
            _LATENCY_BUCKETS,
        )
        self.delay = f.histogram(
            names.METRIC_CONSUME_DELAY,
            "From a save (its version's time) to its row committed in MySQL",
            _DELAY_BUCKETS,
        )
        self.lag = f.gauge(
            names.METRIC_CONSUMER_LAG, "Age of the oldest save in the last batch committed to MySQL"
        )
        self.oldest_unacked = f.gauge(
            names.METRIC_OLDEST_UNACKED,
            "Age of the oldest delivery this consumer holds unacked (0 when none)",
        )
        self.queue_messages = f.gauge(
            names.METRIC_QUEUE_MESSAGES,
            "Messages ready in each form queue (unacked deliveries not counted)",
            ["queue"],
        )
        self.dead_letter_messages = f.gauge(
            names.METRIC_DEAD_LETTER_MESSAGES, "Messages waiting in the dead-letter queue"
        )
