"""k8s/monitoring: the alert rules pass promtool, and every metric the rules and the dashboard
query is one the service's own registries expose (a renamed metric must not leave an alert
that can never fire or a panel that stays empty)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from reconciler.metrics import ReconcileMetrics
from schemas import urls
from service.core.metrics import ConsumerMetrics, Metrics, exposition
from service.http import keys
from tests.conftest import ClientFactory
from tests.support import admin_headers
from tests.system.test_manifests import OVERLAYS, _named, _of, _pod_env, _render

MONITORING = Path(__file__).resolve().parents[2] / "k8s" / "monitoring"
# Series Prometheus or the process collector provide, not volreg's own names.
_NOT_OURS = re.compile(r"^(process_|python_)")
# PromQL words that look like metric names.
_PROMQL = {
    "sum", "rate", "max", "min", "by", "le", "histogram_quantile", "clamp_min", "time",
    "increase", "or", "and", "on", "without", "avg", "count",
}  # fmt: skip
_LABELS = re.compile(r"\{[^}]*\}")
_WORD = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def _rule_groups() -> list[dict[str, Any]]:
    doc = yaml.safe_load((MONITORING / "prometheus-rule.yaml").read_text())
    assert doc["kind"] == "PrometheusRule"
    groups: list[dict[str, Any]] = doc["spec"]["groups"]
    return groups


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads((MONITORING / "volreg-dashboard.json").read_text())
    return dashboard


def _exposed(registry: CollectorRegistry) -> set[str]:
    """Every sample name a scrape of ``registry`` can show, from its metric families."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "gauge": ("",),
    }
    names = set()
    for family in registry.collect():
        for suffix in suffixes.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def _metrics_in(expr: str) -> set[str]:
    """The metric names of a PromQL expression: what is left once strings, label matchers,
    ranges, grouping labels, numbers and PromQL's own words are taken out."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = _LABELS.sub("", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)
    text = re.sub(r"\b\d+(\.\d+)?([eE][+-]?\d+)?\b", "", text)
    return set(_WORD.findall(text)) - _PROMQL


def _queries() -> dict[str, str]:
    out = {}
    for group in _rule_groups():
        for rule in group["rules"]:
            out[f"alert {rule['alert']}"] = rule["expr"]
    for panel in _dashboard()["panels"]:
        for target in panel["targets"]:
            out[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    return out


def test_every_queried_metric_is_exposed_by_the_service() -> None:
    exposed = (
        _exposed(Metrics().registry)
        | _exposed(ConsumerMetrics().registry)
        | _exposed(ReconcileMetrics().registry)
    )
    queries = _queries()
    assert len(queries) > 20
    used = set()
    for where, expr in queries.items():
        names = _metrics_in(expr)
        assert names, f"{where}: no metric found in {expr!r}"
        for name in names:
            if _NOT_OURS.match(name):
                continue
            assert name in exposed, f"{where}: {name} is not a metric of volreg"
            used.add(name)
    # The pipeline's health is on the dashboard and in the alerts.
    for name in (
        "volreg_queue_messages",
        "volreg_consumer_lag_seconds",
        "volreg_dead_letter_messages",
        "volreg_save_stage_seconds_bucket",
        "volreg_reconcile_last_run",
        "volreg_dependency_up",
        "volreg_consumer_oldest_unacked_seconds",
        "volreg_cache_hits_total",
        "volreg_cache_misses_total",
        "volreg_login_failures_total",
        "volreg_http_requests_total",  # its status="429" series
    ):
        assert name in used, name


def _scraped(text: str) -> set[str]:
    """Every sample name a scrape's text can show, from its ``# TYPE`` lines (a family with
    no sample yet is listed too)."""
    suffixes = {"histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names |= {name + s for s in suffixes.get(kind, ("",))}
    return names


async def test_every_queried_metric_is_in_a_live_scrape(
    make_client: ClientFactory, consumer: None
) -> None:
    """The API's /metrics as a running app serves it (with every port wired, so a metric
    defined but never registered shows), the consumer's and the reconciler's exposition: each
    metric a rule or a panel queries is in one of them."""
    client = await make_client()
    resp = await client.get(urls.METRICS, headers=admin_headers(client.app[keys.SETTINGS]))
    assert resp.status == 200
    api = _scraped(await resp.text())
    others = set()
    for registry in (ConsumerMetrics().registry, ReconcileMetrics().registry):
        body, _ = exposition(registry)
        others |= _scraped(body.decode())
    assert "volreg_cache_hits_total" in api and "volreg_login_failures_total" in api
    for where, expr in _queries().items():
        for name in _metrics_in(expr):
            assert name in api | others, f"{where}: {name} is in no live scrape"


def test_alert_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (scripts/ensure-deps.sh installs Debian's)")
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": _rule_groups()}))
    done = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for group in _rule_groups():
        for rule in group["rules"]:
            assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
            assert rule["labels"]["severity"] in {"page", "warn"}, rule["alert"]


def test_dashboard_is_grafana_json_with_unique_panels() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["type"] == "prometheus"


def test_monitoring_kustomization_names_its_files() -> None:
    kustomization = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    for name in kustomization["resources"]:
        assert (MONITORING / name).is_file(), name
    [generator] = kustomization["configMapGenerator"]
    for name in generator["files"]:
        assert (MONITORING / name).is_file(), name


def test_monitoring_renders_with_kustomize() -> None:
    from tests.system.test_manifests import _kustomize

    done = subprocess.run(
        [*_kustomize(), str(MONITORING)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    kinds = {d["kind"] for d in yaml.safe_load_all(done.stdout)}
    assert kinds == {"ConfigMap", "PodMonitor", "PrometheusRule"}


def _selected_components(monitor: dict[str, Any]) -> set[str]:
    selector = monitor["spec"]["selector"]
    found = set()
    if "matchLabels" in selector:
        found.add(selector["matchLabels"]["app.kubernetes.io/component"])
    for rule in selector.get("matchExpressions", []):
        if rule["key"] == "app.kubernetes.io/component":
            assert rule["operator"] == "In"
            found |= set(rule["values"])
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_scrape_sends_the_long_lived_token_the_pods_load(overlay: str) -> None:
    """Each PodMonitor endpoint sends a bearer token from a Secret of the rendered overlay
    (Prometheus reads it in the PodMonitor's namespace, the one volreg runs in), and the pods
    it scrapes load that very key as VOLREG_METRICS_TOKEN, so scraper and server agree; the
    Secret holds nothing else (the monitoring stack reads it, never the passwords)."""
    docs = _render(overlay)
    monitors = list(yaml.safe_load_all((MONITORING / "podmonitor.yaml").read_text()))
    scraped: set[str] = set()
    for monitor in monitors:
        assert monitor["kind"] == "PodMonitor"
        components = _selected_components(monitor)
        scraped |= components
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            auth = endpoint["authorization"]
            assert auth["type"] == "Bearer"
            ref = auth["credentials"]
            assert ref["key"] == "VOLREG_METRICS_TOKEN"
            secret = _named(docs, "Secret", ref["name"])
            assert set(secret["stringData"]) == {ref["key"]}, (
                "the scrape Secret holds the token only"
            )
            for deployment in _of(docs, "Deployment"):
                labels = deployment["spec"]["template"]["metadata"]["labels"]
                if labels.get("app.kubernetes.io/component") not in components:
                    continue
                [container] = deployment["spec"]["template"]["spec"]["containers"]
                loaded = {s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s}
                assert ref["name"] in loaded, deployment["metadata"]["name"]
                assert (
                    _pod_env(docs, container)["VOLREG_METRICS_TOKEN"]
                    == secret["stringData"][ref["key"]]
                )
                ports = {p["name"] for p in container["ports"]}
                assert endpoint["port"] in ports, (deployment["metadata"]["name"], endpoint["port"])
    assert scraped == {"api", "consumer", "reconciler"}
    # No other Secret the pods load sets the variable (it would win or lose by order).
    for secret in _of(docs, "Secret"):
        if secret["metadata"]["name"] != "volreg-metrics-token":
            assert "VOLREG_METRICS_TOKEN" not in secret.get("stringData", {})
