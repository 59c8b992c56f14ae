"""The container images' contents, tested without a container engine.

No base image can be pulled here, so each test runs the image's only install
step (deploy/docker/install) into a fresh virtual environment and starts what
the image would start: its ENTRYPOINT with the Kubernetes manifest's args (or
the image's CMD), paths and ports mapped onto the test's, then checks it with
the image's own HEALTHCHECK command and serves real requests through it.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
import yaml
from deploy_test_support import (
    DEPLOY,
    INSTALL,
    check_ketch_args,
    containers,
    dockerfile_stages,
    dockerfiles,
    named,
    render,
)

from ketch import WrapperClient, WrapperProcess
from ketch.process import READY_PREFIX, ChildProcess, start_child
from ketch_gateway import GatewayProcess
from ketch_gateway.cli import READY_PREFIX as GATEWAY_READY_PREFIX

IMAGE_PREFIX = "/opt/ketch"
BASE = DEPLOY / "kubernetes" / "base"
ADAPTER_VALUES = DEPLOY / "kubernetes" / "autoscaling" / "prometheus-adapter-values.yaml"
ADMIN_TOKEN = "token-from-the-secret"


def install(target: str, prefix: Path) -> Path:
    """Run the images' install step into ``prefix``; the prefix."""
    result = subprocess.run(
        [str(INSTALL), target, str(prefix)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"installed Ketch {target} (cpu) into {prefix}" in result.stdout
    return prefix


def image_env(prefix: Path, home: Path) -> dict[str, str]:
    """The image's environment: its ENV lines, with the prefix where the image has /opt/ketch."""
    return {
        "PATH": f"{prefix}/bin:/usr/local/bin:/usr/bin:/bin",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": "",
        "VIRTUAL_ENV": "",
        "HOME": str(home),
    }


def mapped(words: Sequence[str], mapping: Mapping[str, str]) -> list[str]:
    """``words`` with the image's paths and the cluster's host and ports swapped for the test's."""
    result = []
    for word in words:
        swapped = word
        for image_side, test_side in mapping.items():
            if swapped == image_side or swapped.startswith(image_side + "/"):
                swapped = test_side + swapped[len(image_side) :]
            swapped = swapped.replace(f"//{image_side}", f"//{test_side}")
        result.append(swapped)
    return result


def entry_point(dockerfile: str, args: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """The image's ENTRYPOINT with ``args`` (a manifest's) or its CMD, and its HEALTHCHECK."""
    final = dockerfile_stages(DEPLOY / "docker" / dockerfile)[-1]
    command = final.exec_form("ENTRYPOINT") + list(
        args if args is not None else final.exec_form("CMD")
    )
    return command, final.exec_form("HEALTHCHECK")


Child = TypeVar("Child", bound=ChildProcess)


def start_image(
    kind: type[Child],
    command: Sequence[str],
    mapping: Mapping[str, str],
    env: Mapping[str, str],
    ready_prefix: str,
) -> Child:
    """Start an image's command with its paths mapped and a free port; once it is ready."""
    command = mapped(command, mapping)
    command[command.index("--port") + 1] = "0"
    child = start_child(command, ready_prefix, label=" ".join(command[:2]), env=env)
    return kind(child.process, child.ready_line, child.stderr_tail, child.pumps)


def healthy(healthcheck: Sequence[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(healthcheck), capture_output=True, text=True, env=dict(env), timeout=60, check=False
    )


# --- Dockerfiles --------------------------------------------------------------------------


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.name)
def test_dockerfile_is_multi_stage_non_root_and_installs_only_through_the_script(
    path: Path,
) -> None:
    stages = dockerfile_stages(path)
    assert len(stages) == 2, "a build stage and a final stage"
    build, final = stages
    assert build.name == "build"
    target = path.suffix.lstrip(".")
    (install_step,) = build.all("RUN")
    assert re.fullmatch(
        rf'deploy/docker/install {target} /opt/ketch( "\$\{{VARIANT\}}")?', install_step
    )
    assert final.all("COPY") == ["--from=build /opt/ketch /opt/ketch"]
    for step in final.all("RUN"):  # only the user is made: no compiler, no package manager
        assert not re.search(r"apt|pip|gcc|make|build-essential", step), step
    user = final.all("USER")[-1]
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), "a numeric non-root user, for runAsNonRoot"
    assert final.exec_form("ENTRYPOINT") == ["/opt/ketch/bin/ketch"]
    command = final.exec_form("CMD")
    assert check_ketch_args(command) == [], command
    healthcheck = final.exec_form("HEALTHCHECK")
    assert healthcheck[:2] == ["/opt/ketch/bin/ketch", "probe"]
    assert check_ketch_args(healthcheck[1:]) == []
    (exposed,) = final.all("EXPOSE")
    assert command[command.index("--port") + 1] == exposed
    assert exposed in healthcheck[-1], "the health check asks the port the command listens on"


def test_install_refuses_what_it_cannot_build(tmp_path: Path) -> None:
    for args, message in (
        (["onnxruntime", str(tmp_path / "a")], "unknown target 'onnxruntime'"),
        (["sklearn", str(tmp_path / "b"), "cuda"], "'sklearn' has no 'cuda' variant"),
        (["sklearn", str(tmp_path)], "exists; the environment is made new"),
    ):
        result = subprocess.run([str(INSTALL), *args], capture_output=True, text=True, check=False)
        assert result.returncode == 2
        assert message in result.stderr


# --- the images, run as they would run ---------------------------------------------------


@pytest.fixture(scope="module")
def sklearn_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install("sklearn", tmp_path_factory.mktemp("image-sklearn") / "ketch")


@pytest.fixture(scope="module")
def gateway_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install("gateway", tmp_path_factory.mktemp("image-gateway") / "ketch")


@pytest.fixture(scope="module")
def wrapper(
    sklearn_image: Path, model_volume: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[WrapperProcess, list[str], dict[str, str]]]:
    """The base's digits v1 wrapper: the sklearn image's entry point with the Deployment's args."""
    deployment = named(render(BASE), "Deployment", "ketch-digits-v1")
    (container,) = containers(deployment)
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "models"]
    command, healthcheck = entry_point("Dockerfile.sklearn", container["args"])
    mapping = {
        IMAGE_PREFIX: str(sklearn_image),
        mount["mountPath"]: str(model_volume / mount["subPath"]),
        "0.0.0.0": "127.0.0.1",
    }
    env = image_env(sklearn_image, tmp_path_factory.mktemp("home"))
    process = start_image(WrapperProcess, command, mapping, env, READY_PREFIX)
    port = process.address.rsplit(":", 1)[1]
    with process:
        yield process, [w.replace("8001", port) for w in mapped(healthcheck, mapping)], env


def test_wrapper_image_serves_the_one_model_in_its_volume(
    wrapper: tuple[WrapperProcess, list[str], dict[str, str]],
    digits: tuple[np.ndarray, np.ndarray],
    digits_classifier: Any,
) -> None:
    process, healthcheck, env = wrapper
    assert (process.ready.model, process.ready.version, process.ready.plugin) == (
        "digits",
        "1",
        "sklearn",
    )
    result = healthy(healthcheck, env)
    assert result.returncode == 0, result.stderr
    rows = digits[0][1000:1064]
    with WrapperClient(process.address, model="digits") as client:
        assert client.health() == "SERVING"  # what the Deployment's gRPC probes ask
        outputs = client.infer({"input": rows})
    np.testing.assert_array_equal(outputs["predict"], digits_classifier.predict(rows))


def test_wrapper_image_stops_cleanly_on_sigterm(
    sklearn_image: Path, model_volume: Path, tmp_path: Path
) -> None:
    command, healthcheck = entry_point("Dockerfile.sklearn")  # the image's own CMD
    mapping = {IMAGE_PREFIX: str(sklearn_image), "/mnt/models": str(model_volume / "digits/1")}
    command = mapped(command, mapping)
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = "0"
    env = image_env(sklearn_image, tmp_path)
    child = start_child(command, READY_PREFIX, label="the sklearn image's CMD", env=env)
    process = WrapperProcess(child.process, child.ready_line, child.stderr_tail, child.pumps)
    assert process.ready.model == "1", "without --name, the model is named after its folder"
    port = process.address.rsplit(":", 1)[1]
    assert (
        healthy(mapped([w.replace("8001", port) for w in healthcheck], mapping), env).returncode
        == 0
    )
    assert process.stop() == 0  # what `docker stop` and a pod's termination send
    after = healthy(mapped([w.replace("8001", port) for w in healthcheck], mapping), env)
    assert after.returncode == 1


@pytest.fixture(scope="module")
def gateway(
    gateway_image: Path,
    wrapper: tuple[WrapperProcess, list[str], dict[str, str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayProcess, list[str], dict[str, str]]]:
    """The base's gateway: the gateway image's entry point with the Deployment's args, the
    ConfigMap's ketch.toml with the wrapper's address for its dns: one and SQLite for Redis."""
    objects = render(BASE)
    deployment = named(objects, "Deployment", "ketch-gateway")
    (container,) = containers(deployment)
    config_map = next(o for o in objects if o["kind"] == "ConfigMap")
    folder = tmp_path_factory.mktemp("gateway")
    text = config_map["data"]["ketch.toml"]
    text = text.replace('"dns:ketch-digits-v1:8001"', f'"{wrapper[0].address}"')
    text = text.replace('"redis://ketch-redis:6379/0"', '"state.sqlite"')
    (folder / "ketch.toml").write_text(text)
    command, healthcheck = entry_point("Dockerfile.gateway", container["args"])
    mapping = {IMAGE_PREFIX: str(gateway_image), "/etc/ketch": str(folder), "0.0.0.0": "127.0.0.1"}
    (secret,) = [v for v in container["env"] if v["name"] == "KETCH_ADMIN_TOKEN"]
    env = {**image_env(gateway_image, folder), secret["name"]: ADMIN_TOKEN}
    process = start_image(GatewayProcess, command, mapping, env, GATEWAY_READY_PREFIX)
    port = process.url.rsplit(":", 1)[1]
    with process:
        yield process, [w.replace("8080", port) for w in mapped(healthcheck, mapping)], env


def test_gateway_image_answers_through_the_wrapper_image(
    gateway: tuple[GatewayProcess, list[str], dict[str, str]],
    digits: tuple[np.ndarray, np.ndarray],
    digits_classifier: Any,
) -> None:
    process, healthcheck, env = gateway
    result = healthy(healthcheck, env)
    assert result.returncode == 0, result.stderr
    objects = render(BASE)
    for probe in ("readinessProbe", "livenessProbe"):
        path = containers(named(objects, "Deployment", "ketch-gateway"))[0][probe]["httpGet"][
            "path"
        ]
        assert httpx.get(process.url + path).status_code == 200, path
    rows = digits[0][1000:1020]
    answers = [
        httpx.post(f"{process.url}/apps/digits/predict", json={"input": row.tolist()})
        for row in rows
    ]
    assert [a.json()["output"] for a in answers] == digits_classifier.predict(rows).tolist()
    admin = httpx.get(f"{process.url}/admin/models")
    assert admin.status_code == 401, "the Secret's token protects the admin API"
    authorised = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert httpx.get(f"{process.url}/admin/models", headers=authorised).status_code == 200


def test_the_adapter_rule_reads_a_series_the_gateway_exports(
    gateway: tuple[GatewayProcess, list[str], dict[str, str]],
) -> None:
    process = gateway[0]
    for row in np.zeros((5, 64)):
        httpx.post(f"{process.url}/apps/digits/predict", json={"input": row.tolist()})
    exposition = httpx.get(f"{process.url}/metrics").text
    (rule,) = yaml.safe_load(ADAPTER_VALUES.read_text())["rules"]["external"]
    series = re.fullmatch(r"(\w+)\{(.*)\}", rule["seriesQuery"])
    assert series is not None
    name, matchers = series.groups()
    labels = [m.split("!=")[0] for m in matchers.split(",") if m.split("!=")[0] != "namespace"]
    assert re.fullmatch(rule["name"]["matches"], name)
    exported = [line for line in exposition.splitlines() if line.startswith(name + "{")]
    assert exported, f"the gateway exports no {name}"
    assert all(f'{label}="' in line for line in exported for label in labels)
    assert any('model="digits"' in line and 'version="1"' in line for line in exported)
    # the HPA asks the adapter for the metric under the name the rule gives it, for this version
    autoscaler = named(
        render(DEPLOY / "kubernetes" / "overlays" / "production"),
        "HorizontalPodAutoscaler",
        "ketch-digits-v1",
    )
    external = autoscaler["spec"]["metrics"][0]["external"]
    assert external["metric"]["name"] == rule["name"]["as"]
    assert external["metric"]["selector"]["matchLabels"] == {"model": "digits", "version": "1"}
    assert autoscaler["spec"]["metrics"][1]["resource"]["name"] == "cpu", "the CPU fallback"


def test_the_gateway_resolves_a_dns_address_into_one_replica_per_pod(
    gateway_image: Path,
    wrapper: tuple[WrapperProcess, list[str], dict[str, str]],
    tmp_path: Path,
) -> None:
    port = wrapper[0].address.rsplit(":", 1)[1]
    config_map = next(o for o in render(BASE) if o["kind"] == "ConfigMap")
    text = config_map["data"]["ketch.toml"]
    text = text.replace('"dns:ketch-digits-v1:8001"', f'"dns:localhost:{port}"')
    text = text.replace('"redis://ketch-redis:6379/0"', '"state.sqlite"')
    (tmp_path / "ketch.toml").write_text(text)
    command = [
        f"{gateway_image}/bin/ketch", "gateway", "--config", str(tmp_path / "ketch.toml"),
        "--host", "127.0.0.1", "--port", "0",
    ]  # fmt: skip
    env = {**image_env(gateway_image, tmp_path), "KETCH_ADMIN_TOKEN": ADMIN_TOKEN}
    child = start_child(command, GATEWAY_READY_PREFIX, label="gateway", env=env, echo_stderr=False)
    with GatewayProcess(child.process, child.ready_line, child.stderr_tail, child.pumps) as process:
        deadline = time.monotonic() + 10
        replicas: list[str] = []
        while time.monotonic() < deadline and f"127.0.0.1:{port}" not in replicas:
            models = httpx.get(
                f"{process.url}/admin/models", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
            ).json()["models"]
            replicas = [r["address"] for r in models[0]["versions"][0]["replicas"]]
            time.sleep(0.2)
    assert f"127.0.0.1:{port}" in replicas, replicas
