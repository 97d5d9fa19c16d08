"""Prometheus metrics of reconciliation runs, on a registry of their own."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry

from reconciler.model import OUTCOME_FAILED, RunReport
from service.core import names
from service.core.metrics import Family

COUNTS = ("checked", "drifted", "repaired_redis", "repaired_mysql", "unrepaired", "in_grace")


class ReconcileMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        f = Family(self.registry)
        self.runs = f.counter(names.METRIC_RECONCILE_RUNS, "Reconcile runs", ["mode", "outcome"])
        self.forms = f.counter(
            names.METRIC_RECONCILE_FORMS, "Forms seen by reconcile runs", ["result"]
        )
        self.last = f.gauge(
            names.METRIC_RECONCILE_LAST,
            "The last completed run: its counts, duration_s and finished (unix time)",
            ["field"],
        )
        self.seconds = f.histogram(
            names.METRIC_RECONCILE_SECONDS,
            "Duration of reconcile runs",
            (0.1, 0.5, 1, 5, 15, 60, 300, 1800),
            ["mode"],
        )

    def observe(self, report: RunReport) -> None:
        self.runs.labels(report.mode, report.outcome).inc()
        self.seconds.labels(report.mode).observe(report.duration_s)
        for name in COUNTS:
            self.forms.labels(name).inc(getattr(report, name))
        if report.outcome != OUTCOME_FAILED:
            for name in COUNTS:
                self.last.labels(name).set(getattr(report, name))
            self.last.labels("duration_s").set(report.duration_s)
            self.last.labels("finished").set(time.time())
