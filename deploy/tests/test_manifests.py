"""The kustomize base and overlays, rendered offline and validated against Kubernetes' schemas."""

from __future__ import annotations

import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
from deploy_test_support import (
    DEPLOY,
    KUBERNETES_VERSIONS,
    WORKLOAD_KINDS,
    Manifest,
    check_ketch_args,
    containers,
    kustomizations,
    named,
    of_kind,
    pod_spec,
    render,
)

from ketch_gateway import load_config

KUBERNETES = DEPLOY / "kubernetes"
KSERVE_KINDS = ("ClusterServingRuntime", "ServingRuntime", "InferenceService")
CLUSTER_SCOPED = frozenset({"ClusterServingRuntime", "Namespace"})
OVERLAYS = [KUBERNETES / "base", *sorted((KUBERNETES / "overlays").iterdir())]


def ids(folders: list[Path]) -> list[str]:
    return [str(folder.relative_to(DEPLOY)) for folder in folders]


def workloads(objects: tuple[Manifest, ...]) -> list[Manifest]:
    return [o for o in objects if o["kind"] in WORKLOAD_KINDS]


def test_every_kustomization_is_found_and_renders() -> None:
    folders = kustomizations()
    assert {"kubernetes/base", "kubernetes/overlays/dev", "kubernetes/overlays/gpu"} <= set(
        ids(folders)
    )
    for folder in folders:
        assert render(folder), f"{folder} rendered nothing"


@pytest.mark.parametrize("folder", kustomizations(), ids=ids(kustomizations()))
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_against_the_kubernetes_schemas(folder: Path, version: str) -> None:
    for manifest in render(folder):
        if manifest["kind"] in KSERVE_KINDS:
            continue  # KServe's own: test_kserve.py checks them against its API reference
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            name = f"{manifest['kind']} {manifest['metadata']['name']}"
            message = f"{name} in {folder.name}, Kubernetes {version}: {error}"
            raise AssertionError(message) from None


@pytest.mark.parametrize("folder", OVERLAYS, ids=ids(OVERLAYS))
def test_every_container_has_probes_resources_and_runs_as_non_root(folder: Path) -> None:
    for workload in workloads(render(folder)):
        name = workload["metadata"]["name"]
        pod = pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod.get("automountServiceAccountToken") is False, name
        for container in containers(workload):
            where = f"{name}/{container['name']}"
            assert "readinessProbe" in container, f"{where}: no readiness probe"
            assert "livenessProbe" in container, f"{where}: no liveness probe"
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert "memory" in resources["limits"], where
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"]["drop"] == ["ALL"], where


@pytest.mark.parametrize("folder", OVERLAYS, ids=ids(OVERLAYS))
def test_ketch_containers_name_real_flags(folder: Path) -> None:
    checked = 0
    for workload in workloads(render(folder)):
        for container in containers(workload):
            if not container["image"].startswith("ketch/"):
                continue
            assert "command" not in container, "the image's entry point is ketch"
            assert check_ketch_args(container["args"]) == [], container["args"]
            checked += 1
    assert checked >= 2, "the gateway and at least one wrapper"


@pytest.mark.parametrize("folder", OVERLAYS, ids=ids(OVERLAYS))
def test_references_between_objects_resolve(folder: Path) -> None:
    objects = render(folder)
    present = {(o["kind"], o["metadata"]["name"]) for o in objects}
    external = {("Secret", "ketch-admin"), ("Secret", "ketch-redis")}  # the operator's own
    for workload in workloads(objects):
        pod = pod_spec(workload)
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in present
            if "persistentVolumeClaim" in volume:
                assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in (
                    present
                )
        for container in containers(workload):
            for variable in container.get("env", []):
                secret = variable.get("valueFrom", {}).get("secretKeyRef")
                if secret:
                    assert ("Secret", secret["name"]) in present | external, secret
    for autoscaler in of_kind(objects, "HorizontalPodAutoscaler"):
        target = autoscaler["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) in present, target
    pods = [pod_labels(w) for w in workloads(objects)]
    for selecting in of_kind(objects, "Service") + of_kind(objects, "PodDisruptionBudget"):
        selector = selecting["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        assert any(selector.items() <= labels.items() for labels in pods), selecting["metadata"]


def pod_labels(workload: Manifest) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def gateway_config(objects: tuple[Manifest, ...]) -> dict[str, object]:
    config_maps = [o for o in of_kind(objects, "ConfigMap") if "ketch.toml" in o.get("data", {})]
    assert len(config_maps) == 1
    return tomllib.loads(config_maps[0]["data"]["ketch.toml"])


@pytest.mark.parametrize("folder", OVERLAYS, ids=ids(OVERLAYS))
def test_every_dns_address_names_a_headless_service_of_that_model_version(folder: Path) -> None:
    objects = render(folder)
    config = gateway_config(objects)
    models = config["models"]
    assert isinstance(models, list)
    for model in models:
        for version in model["versions"]:
            for address in version["addresses"]:
                scheme, name, port = address.split(":")
                assert scheme == "dns"
                service = named(objects, "Service", name)
                assert service["spec"]["clusterIP"] == "None", "headless: DNS lists the pods"
                assert int(port) in [p["port"] for p in service["spec"]["ports"]]
                deployment = named(objects, "Deployment", name)
                args = containers(deployment)[0]["args"]
                assert args[args.index("--name") + 1] == model["name"]
                assert args[args.index("--version") + 1] == version["version"]
                assert args[args.index("--port") + 1] == port


@pytest.mark.parametrize("folder", OVERLAYS, ids=ids(OVERLAYS))
def test_the_configmap_loads_through_the_gateways_own_validator(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KETCH_ADMIN_TOKEN", "from-the-secret")
    objects = render(folder)
    text = next(o for o in of_kind(objects, "ConfigMap") if "ketch.toml" in o.get("data", {}))
    path = tmp_path / "ketch.toml"
    path.write_text(text["data"]["ketch.toml"])
    config = load_config(path)
    assert config.settings.state == "redis://ketch-redis:6379/0"
    assert config.settings.admin_token == "from-the-secret"
    assert [app.name for app in config.apps] == ["digits"]


def test_dev_runs_one_of_each_without_autoscaling() -> None:
    objects = render(KUBERNETES / "overlays" / "dev")
    assert [w["spec"]["replicas"] for w in workloads(objects)] == [1, 1, 1]
    assert of_kind(objects, "HorizontalPodAutoscaler") == []
    assert len(of_kind(objects, "Secret")) == 1, "dev brings its own admin token"
    assert {o["metadata"].get("namespace") for o in objects} == {"ketch-dev"}


def test_base_runs_two_gateways_behind_a_budget() -> None:
    objects = render(KUBERNETES / "base")
    assert named(objects, "Deployment", "ketch-gateway")["spec"]["replicas"] == 2
    assert named(objects, "PodDisruptionBudget", "ketch-gateway")["spec"]["maxUnavailable"] == 1
    redis = named(objects, "StatefulSet", "ketch-redis")
    assert redis["spec"]["volumeClaimTemplates"], "Redis keeps its data on a volume"
    args = containers(redis)[0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes"


def test_gpu_overlay_puts_the_wrapper_on_a_gpu() -> None:
    objects = render(KUBERNETES / "overlays" / "gpu")
    wrapper = named(objects, "Deployment", "ketch-digits-v1")
    container = containers(wrapper)[0]
    assert container["image"].startswith("ketch/torch-cuda:")
    args = container["args"]
    assert args[:2] == ["serve", "torch"]
    assert args[args.index("--device") + 1] == "cuda:0"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    tolerations = pod_spec(wrapper)["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    gateway = named(objects, "Deployment", "ketch-gateway")
    assert "nvidia.com/gpu" not in containers(gateway)[0]["resources"]["limits"]


def test_external_redis_replaces_the_statefulset_with_a_secret_url() -> None:
    objects = render(KUBERNETES / "overlays" / "production")
    assert of_kind(objects, "StatefulSet") == []
    gateway = containers(named(objects, "Deployment", "ketch-gateway"))[0]
    assert gateway["args"][-2:] == ["--state", "$(KETCH_STATE)"]
    state = next(v for v in gateway["env"] if v["name"] == "KETCH_STATE")
    assert state["valueFrom"]["secretKeyRef"] == {"name": "ketch-redis", "key": "url"}


@pytest.mark.parametrize("folder", OVERLAYS, ids=ids(OVERLAYS))
def test_namespaced_objects_carry_no_namespace_but_the_overlays(folder: Path) -> None:
    namespaces = {
        o["metadata"].get("namespace") for o in render(folder) if o["kind"] not in CLUSTER_SCOPED
    }
    assert len(namespaces) == 1, "one namespace per overlay (the base leaves it to kubectl)"
