"""Replicas found by DNS (``dns:HOST:PORT``), on this machine's own resolver.

A real ``ketch serve`` on 127.0.0.1 and a gateway in process that reaches it over
gRPC through ``dns:localhost:PORT``; a name under ``.invalid`` (RFC 6761: it never
resolves) for a version that waits, not ready. How replicas join and leave as DNS
changes, with a DNS server of its own, is tested on the multi-host bed
(``cluster/test_cluster.py``).
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_test_support import ADMIN_TOKEN, AUTH, metric
from starlette.testclient import TestClient

from ketch import WrapperProcess, start_wrapper
from ketch_gateway import Gateway, create_app, load_config, parse_config, write_config
from ketch_gateway.control.config import ConfigError
from ketch_gateway.serving.discovery import check_address, parse_dns_address

UNRESOLVABLE = "dns:no-such-wrapper.invalid:8001"


def digits_toml(address: str, default_output: bool = False) -> str:
    return f"""
[gateway]
admin_token = "{ADMIN_TOKEN}"
resolve_every_s = 0.5

[[models]]
name = "digits"
  [[models.versions]]
  version = "1"
  addresses = ["{address}"]

[[apps]]
name = "digits"
models = ["digits"]
latency_objective_ms = 5000
{"default_output = -1" if default_output else ""}
"""


@pytest.fixture(scope="module")
def wrapper(digits_model: Path) -> Iterator[WrapperProcess]:
    with start_wrapper("sklearn", digits_model, name="digits", host="127.0.0.1") as served:
        yield served


def served_gateway(text: str, folder: Path) -> TestClient:
    config = parse_config(text, str(folder / "ketch.toml"), folder)
    return TestClient(create_app(Gateway(config)), raise_server_exceptions=False)


def replicas(client: httpx.Client) -> list[dict[str, Any]]:
    (model,) = client.get("/admin/models", headers=AUTH).json()["models"]
    found: list[dict[str, Any]] = model["versions"][0]["replicas"]
    return found


def test_dns_addresses_are_read_and_checked() -> None:
    name = parse_dns_address("dns:digits-v1.models.svc.cluster.local:8001")
    assert name is not None
    assert (name.host, name.port) == ("digits-v1.models.svc.cluster.local", 8001)
    assert str(name) == "dns:digits-v1.models.svc.cluster.local:8001"
    assert parse_dns_address("10.0.0.5:8001") is None
    for address in ("10.0.0.5:8001", "[::1]:8001", "dns:ketch-digits-v1:8001"):
        check_address(address)
    for bad in ("dns:8001", "dns:host:http", "dns:host:70000", "dns://host:8001", "host"):
        with pytest.raises(ValueError, match="is not"):
            check_address(bad)


def test_the_configuration_names_a_bad_dns_address_and_its_line(tmp_path: Path) -> None:
    expected = r"ketch.toml:10: .*addresses: 'dns:nowhere' is not dns:HOST:PORT"
    with pytest.raises(ConfigError, match=expected):
        load_config(write_config(tmp_path, digits_toml("dns:nowhere")))
    text = digits_toml(UNRESOLVABLE).replace("resolve_every_s = 0.5", "resolve_every_s = 0")
    with pytest.raises(ConfigError, match="resolve_every_s: must be greater than 0"):
        load_config(write_config(tmp_path, text))
    config = load_config(write_config(tmp_path, digits_toml(UNRESOLVABLE)))
    assert config.settings.resolve_every_s == 0.5
    assert config.settings.strict_dns is False


def test_a_dns_name_becomes_a_replica_per_address(
    wrapper: WrapperProcess, tmp_path: Path, digits: Any
) -> None:
    port = wrapper.address.rsplit(":", 1)[1]
    address = f"dns:localhost:{port}"
    with served_gateway(digits_toml(address), tmp_path) as client:
        found = {r["address"]: r for r in replicas(client)}
        # localhost may also name ::1, where the wrapper does not listen: that one waits
        assert found[f"127.0.0.1:{port}"]["healthy"] is True
        assert {r["source"] for r in found.values()} == {address}
        answer = client.post("/apps/digits/predict", json={"input": digits[0][0].tolist()})
        assert answer.json()["default"] is False
        assert metric(client, "ketch_dns_addresses", address=address) == len(found)
        (model,) = client.get("/admin/models", headers=AUTH).json()["models"]
        assert model["versions"][0]["dns"][address]["resolved"] is True


def test_a_name_that_does_not_resolve_leaves_the_version_not_ready(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ketch_gateway.serving.discovery")
    with served_gateway(digits_toml(UNRESOLVABLE, default_output=True), tmp_path) as client:
        assert client.get("/v2/health/ready").status_code == 503
        assert replicas(client) == []
        assert metric(client, "ketch_dns_addresses", address=UNRESOLVABLE) == 0
        answer = client.post("/apps/digits/predict", json={"input": [0.0] * 64}).json()
        assert answer["default"] is True
    assert any("does not resolve" in r.getMessage() for r in caplog.records)


def test_strict_dns_refuses_to_start_on_a_name_that_does_not_resolve(tmp_path: Path) -> None:
    path = write_config(tmp_path, digits_toml(UNRESOLVABLE))
    command = [sys.executable, "-m", "ketch", "gateway", "--config", str(path), "--port", "0"]
    result = subprocess.run(
        [*command, "--strict-dns", "--state", str(tmp_path / "state.sqlite")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert f"{UNRESOLVABLE} does not resolve" in result.stderr


def test_the_admin_api_adds_and_removes_a_dns_name(wrapper: WrapperProcess, tmp_path: Path) -> None:
    port = wrapper.address.rsplit(":", 1)[1]
    address = f"dns:localhost:{port}"
    replicas_url = "/admin/models/digits/versions/1/replicas"
    with served_gateway(digits_toml(UNRESOLVABLE), tmp_path) as client:
        client.headers.update(AUTH)
        bad = client.post(replicas_url, json={"address": "dns:localhost"})
        assert bad.status_code == 400
        assert bad.json()["error"] == "address: 'dns:localhost' is not dns:HOST:PORT"
        garbage = client.post(replicas_url, json={"address": "nowhere"})
        assert garbage.json()["error"] == "address: 'nowhere' is not host:port or dns:HOST:PORT"
        assert client.post(replicas_url, json={"address": address}).status_code == 200
        assert f"127.0.0.1:{port}" in [r["address"] for r in replicas(client) if r["healthy"]]
        assert client.get("/v2/health/ready").status_code == 200
        removed = client.delete(f"{replicas_url}/{address}")
        assert removed.status_code == 200, removed.text
        assert replicas(client) == []
