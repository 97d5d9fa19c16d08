"""The Kustomize overlays, read as an attacker would: data stores reachable only from our
namespace (and the operators), the application's MariaDB user limited to rows, the schema
owned by a migration user only the migrate Job knows, credentials only in Secrets."""

from __future__ import annotations

from typing import Any

import pytest

from tests.system.test_manifests import OVERLAYS, _named, _of, _render

ROW_PRIVILEGES = {"SELECT", "INSERT", "UPDATE", "DELETE"}


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for rule in selector.get("matchExpressions", []):
        present = labels.get(rule["key"])
        if rule["operator"] == "In" and present not in rule["values"]:
            return False
        if rule["operator"] == "NotIn" and present in rule["values"]:
            return False
    return True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_data_stores_take_traffic_only_from_this_namespace_and_operators(overlay: str) -> None:
    docs = _render(overlay)
    policies = {p["metadata"]["name"]: p for p in _of(docs, "NetworkPolicy")}
    stores = policies["volreg-data-stores"]
    # A data store's pod (no volreg name label) is selected; our own pods are not.
    assert _selects(stores["spec"]["podSelector"], {"app": "volreg-redis"})
    assert not _selects(
        stores["spec"]["podSelector"],
        {"app.kubernetes.io/name": "volreg", "app.kubernetes.io/component": "api"},
    )
    assert stores["spec"]["policyTypes"] == ["Ingress"]
    [rule] = stores["spec"]["ingress"]
    sources = rule["from"]
    assert {"podSelector": {}} in sources  # this namespace only: no namespaceSelector: {}
    for source in sources:
        if "namespaceSelector" in source:
            assert source["namespaceSelector"].get("matchLabels"), "every namespace allowed"
    for deployment in _of(docs, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [p for p in policies.values() if _selects(p["spec"]["podSelector"], labels)]
        assert covering, f"{deployment['metadata']['name']} is covered by no policy"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_application_user_reads_and_writes_rows_only(overlay: str) -> None:
    docs = _render(overlay)
    grants = _of(docs, "Grant")
    app = [g for g in grants if g["spec"]["username"] == "volreg"]
    migrate = [g for g in grants if g["spec"]["username"] == "volreg-migrate"]
    assert app and all(set(g["spec"]["privileges"]) == ROW_PRIVILEGES for g in app)
    assert len(migrate) == len(app), "every server has a migration user"
    job = _named(docs, "Job", "volreg-migrate")
    [container] = job["spec"]["template"]["spec"]["containers"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"]}
    assert refs == {"VOLREG_MYSQL_DSN": "volreg-migrate", "VOLREG_MYSQL_SHARDS": "volreg-migrate"}
    # The migration user's credentials are in no Secret the long-running pods load.
    shared = _named(docs, "Secret", "volreg-secrets")["stringData"]
    assert not any("volreg-migrate" in v for v in shared.values())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_credentials_live_in_secrets_only(overlay: str) -> None:
    docs = _render(overlay)
    for config in _of(docs, "ConfigMap"):
        for name, value in config.get("data", {}).items():
            assert "@" not in value and "PASSWORD" not in name, (name, value)
    shared = _named(docs, "Secret", "volreg-secrets")["stringData"]
    for name in ("VOLREG_TOKEN_SECRET", "VOLREG_AMQP_URL"):
        assert name in shared
    if overlay == "dev":
        assert shared["VOLREG_REDIS_URL"].startswith("redis://:REPLACE-ME@")
    else:
        # The cluster client's password, and the operator sets it on every node.
        assert shared["VOLREG_REDIS_CLUSTER_PASSWORD"] == "REPLACE-ME"
        [cluster] = _of(docs, "RedisCluster")
        auth = cluster["spec"]["kubernetesConfig"]["redisSecret"]
        assert _named(docs, "Secret", auth["name"])["stringData"][auth["key"]] == "REPLACE-ME"
