"""Several gateways on one Redis apply every admin change, in one order.

Two (or three) gateways in process, over a model served in process and one real
Redis server: a change made on one is applied by the others (rollouts' splits and
shadows included), changes made on several at once end in the same state everywhere,
and a change that does not apply on a gateway (its model is not there) is skipped
without stopping the others.
How quickly, and across a gateway cut off from Redis, is tested on the multi-host
bed (``cluster/test_cluster.py``) and measured by ``bench/cluster.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from gateway_test_support import AUTH, metric, redis_server, two_versions_toml, wait_until
from in_process import LocalModels, gateway_client


def sync_toml(address: str, state: str, *, other: bool = False) -> str:
    other_model = f"""
[[models]]
name = "other"
  [[models.versions]]
  version = "1"
  addresses = ["{address}"]
"""
    return two_versions_toml(address, state, other_model if other else "")


@pytest.fixture
def gateways(
    tmp_path: Path, local_models: LocalModels, digits_model: Path
) -> Iterator[list[httpx.Client]]:
    """Three gateways on one Redis; the first also has a model ``other``."""
    address = local_models.serve("digits", "sklearn", digits_model)
    with redis_server(tmp_path) as url, contextlib.ExitStack() as stack:
        clients = []
        for index in range(3):
            folder = tmp_path / f"gateway-{index}"
            folder.mkdir()
            text = sync_toml(address, url, other=index == 0)
            client = stack.enter_context(gateway_client(text, folder, local_models))
            client.headers.update(AUTH)
            clients.append(client)
        yield clients


def current_version(client: httpx.Client) -> str:
    models = client.get("/admin/models").json()["models"]
    return str(next(m for m in models if m["name"] == "digits")["version"])


def position(client: httpx.Client) -> float:
    return metric(client, "ketch_admin_log_position")


def test_a_change_on_one_gateway_is_applied_by_the_others(gateways: list[httpx.Client]) -> None:
    first, *others = gateways
    assert first.put("/admin/models/digits/version", json={"version": "1"}).status_code == 200
    wait_until(lambda: all(current_version(other) == "1" for other in others))
    for other in others:
        assert metric(other, "ketch_admin_changes_applied_total", source="notification") == 1
    assert metric(first, "ketch_admin_changes_applied_total", source="local") == 1
    assert [position(client) for client in gateways] == [1, 1, 1]


def test_an_apps_new_settings_reach_every_gateway(gateways: list[httpx.Client]) -> None:
    first, *others = gateways
    settings = {"models": ["digits"], "latency_objective_ms": 750, "default_output": -1}
    assert first.put("/admin/apps/digits", json=settings).status_code == 200

    def objective(client: httpx.Client) -> float:
        return float(client.get("/admin/apps").json()["apps"][0]["latency_objective_ms"])

    wait_until(lambda: all(objective(other) == 750 for other in others))


def test_changes_made_on_several_gateways_at_once_end_the_same_everywhere(
    gateways: list[httpx.Client],
) -> None:
    def change(number: int) -> int:
        client = gateways[number % len(gateways)]
        version = str(1 + number % 2)
        answer = client.put("/admin/models/digits/version", json={"version": version})
        return answer.status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert list(pool.map(change, range(12))) == [200] * 12
    wait_until(lambda: all(position(client) == 12 for client in gateways))
    assert len({current_version(client) for client in gateways}) == 1


def test_a_change_that_does_not_apply_on_a_gateway_is_skipped_there(
    gateways: list[httpx.Client],
) -> None:
    first, *others = gateways
    linked = first.post("/admin/apps/digits/links", json={"model": "other"})
    assert linked.status_code == 200
    assert first.put("/admin/models/digits/version", json={"version": "1"}).status_code == 200
    wait_until(lambda: all(current_version(other) == "1" for other in others))
    for other in others:  # they have no model "other": that change is skipped
        assert position(other) == 2
        assert other.get("/admin/apps").json()["apps"][0]["models"] == ["digits"]
    assert first.get("/admin/apps").json()["apps"][0]["models"] == ["digits", "other"]


def steering(client: httpx.Client) -> dict[str, object]:
    answer = client.get("/admin/models/digits/rollout")
    assert answer.status_code == 200, answer.text
    found: dict[str, object] = answer.json()
    return found


def test_splits_and_shadows_reach_every_gateway(gateways: list[httpx.Client]) -> None:
    first, *others = gateways
    split = {"1": 0.75, "2": 0.25}
    answer = first.put("/admin/models/digits/split", json={"split": split})
    assert answer.status_code == 200, answer.text
    shadow = {"version": "1", "share": 0.5}  # the current version is "2"
    answer = first.put("/admin/models/digits/shadow", json=shadow)
    assert answer.status_code == 200, answer.text
    wait_until(lambda: all(position(other) == 2 for other in others))
    for other in others:
        state = steering(other)
        assert state["split"] == split
        assert isinstance(state["shadow"], dict)
        assert state["shadow"]["version"] == "1"
        assert state["shadow"]["share"] == 0.5
    assert first.delete("/admin/models/digits/split").status_code == 200
    wait_until(lambda: all(not steering(other).get("split") for other in others))
