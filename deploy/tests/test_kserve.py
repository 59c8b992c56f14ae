"""KServe's ClusterServingRuntimes and the InferenceService example, against KServe's API.

kubernetes-validate knows no custom resources, so the fields KServe requires
(serving.kserve.io/v1alpha1 ServingRuntimeSpec, v1beta1 InferenceServiceSpec) are
checked here, and every runtime container against Kubernetes' own Container schema.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from deploy_test_support import DEPLOY, KUBERNETES_VERSIONS, check_ketch_args, of_kind, render
from kubernetes_validate.utils import schema_contents
from referencing import Registry, Resource

KSERVE = DEPLOY / "kserve"
PROTOCOL_VERSIONS = {"v1", "v2", "grpc-v1", "grpc-v2"}
"""KServe's constants.InferenceServiceProtocol values."""
FORMATS_BY_RUNTIME = {
    "ketch-sklearn": {"sklearn"},
    "ketch-torch": {"pytorch", "onnx"},
    "ketch-tensorflow": {"tensorflow"},
    "ketch-vw": {"vw"},
}


def runtimes() -> list[dict[str, Any]]:
    return of_kind(render(KSERVE), "ClusterServingRuntime")


def container_validator(version: str) -> jsonschema.protocols.Validator:
    """Kubernetes' strict schema for a core/v1 Container."""
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    schema = schema_contents(f"{folder}/container-v1.json", version)
    definitions = schema_contents(f"{folder}/_definitions.json", version)
    registry: Registry[Any] = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(definitions) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


def test_one_runtime_per_plugin_with_the_formats_it_serves() -> None:
    found = {r["metadata"]["name"]: r for r in runtimes()}
    assert set(found) == set(FORMATS_BY_RUNTIME)
    for name, runtime in found.items():
        assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1"
        formats = runtime["spec"]["supportedModelFormats"]
        assert {f["name"] for f in formats} == FORMATS_BY_RUNTIME[name]
        for model_format in formats:
            assert set(model_format) <= {"name", "version", "autoSelect", "priority"}
            assert isinstance(model_format["version"], str)
            assert model_format["autoSelect"] is False, "name the runtime: no surprise takeover"


@pytest.mark.parametrize("runtime", runtimes(), ids=lambda r: r["metadata"]["name"])
def test_runtime_serves_grpc_v2_with_ketch_serve_on_an_h2c_port(runtime: dict[str, Any]) -> None:
    spec = runtime["spec"]
    assert spec["protocolVersions"] == ["grpc-v2"]
    assert set(spec["protocolVersions"]) <= PROTOCOL_VERSIONS
    assert spec["multiModel"] is False
    (container,) = spec["containers"]  # required, and KServe merges into kserve-container
    assert container["name"] == "kserve-container"
    plugin = runtime["metadata"]["name"].removeprefix("ketch-")
    args = container["args"]
    assert args[:3] == ["serve", plugin, "/mnt/models"], "KServe's storage initializer's folder"
    assert args[args.index("--name") + 1] == "{{.Name}}", "served under the InferenceService's name"
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert check_ketch_args(args) == []
    (port,) = container["ports"]
    assert port["name"] == "h2c", "KServe and Knative route gRPC to the port named h2c"
    assert args[args.index("--port") + 1] == str(port["containerPort"])
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == port["containerPort"]
    assert container["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_runtime_containers_are_valid_kubernetes_containers(version: str) -> None:
    validator = container_validator(version)
    for runtime in runtimes():
        for container in runtime["spec"]["containers"]:
            errors = [error.message for error in validator.iter_errors(container)]
            assert errors == [], (runtime["metadata"]["name"], errors)


def test_container_schema_catches_a_misspelt_field() -> None:
    container = dict(runtimes()[0]["spec"]["containers"][0], argz=["serve"])
    assert not container_validator(KUBERNETES_VERSIONS[-1]).is_valid(container)


def test_inference_service_example_uses_a_ketch_runtime() -> None:
    (service,) = render(KSERVE / "example")
    assert service["apiVersion"] == "serving.kserve.io/v1beta1"
    assert service["kind"] == "InferenceService"
    model = service["spec"]["predictor"]["model"]  # predictor: required
    runtime = next(r for r in runtimes() if r["metadata"]["name"] == model["runtime"])
    supported = {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert model["modelFormat"]["name"] in supported  # modelFormat.name: required
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    assert model["storageUri"].split("://", 1)[0] in {"pvc", "s3", "gs", "https", "hdfs", "oci"}
    validator = container_validator(KUBERNETES_VERSIONS[-1])
    resources = {"name": "kserve-container", "resources": model["resources"]}
    assert validator.is_valid(resources)
