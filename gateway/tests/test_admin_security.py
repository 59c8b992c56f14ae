"""The admin API as an attacker would use it: each attack refused with a clear 4xx.

Model paths confined to the configured roots, plugins to installed ones, no trusted
pickles, a bounded replica count, throttled token guessing; a failed add that
leaves nothing behind; wrappers that do not see the gateway's secrets. Refusals run
in process (nothing is launched); what launches wrappers runs a real gateway.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_test_support import ADMIN_TOKEN, AUTH, metric
from in_process import LocalModels, gateway_client

from ketch_gateway import GatewayProcess, start_gateway, write_config
from ketch_gateway.control.admin_policy import AdminPolicy
from ketch_gateway.control.config import read_version
from ketch_gateway.control.config_reader import ConfigError, Reader
from ketch_gateway.stores.contract import open_store

SECRET_VARIABLE = "KETCH_TEST_SECRET"
PASSED_VARIABLE = "KETCH_TEST_PASSED"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, digits_model: Path) -> Path:
    """The admin API's model root: the digits model, a file that is no model, a symlink out."""
    folder = tmp_path_factory.mktemp("roots")
    root = folder / "models"
    (root / "sub").mkdir(parents=True)
    shutil.copy(digits_model, root / "digits.skops")
    (root / "notes.skops").write_text("not a model\n")
    outside = folder / "outside"
    outside.mkdir()
    shutil.copy(digits_model, outside / "digits.skops")
    (root / "escape.skops").symlink_to(outside / "digits.skops")
    return root


def secured_toml(root: Path | None, model: str, extra: str = "") -> str:
    """A gateway whose admin API is confined to ``root`` (none: no roots), with ``model``."""
    roots = f'model_roots = ["{root}"]' if root is not None else ""
    return f"""
[gateway]
admin_token = "{ADMIN_TOKEN}"

[admin]
{roots}
max_replicas = 3
auth_failures = 3
auth_window_s = 600
{extra}

[[models]]
name = "digits"
  [[models.versions]]
  version = "1"
{model}

[[apps]]
name = "digits"
models = ["digits"]
latency_objective_ms = 5000
"""


@pytest.fixture
def guarded(
    tmp_path: Path, root: Path, local_models: LocalModels, digits_model: Path
) -> Iterator[httpx.Client]:
    """A gateway in process, confined to ``root``, over the digits model served in process."""
    address = local_models.serve("digits", "sklearn", digits_model)
    text = secured_toml(root, f'  addresses = ["{address}"]')
    with gateway_client(text, tmp_path, local_models) as client:
        client.headers.update(AUTH)
        yield client


def launched(path: str, **fields: Any) -> dict[str, Any]:
    return {"version": "2", "plugin": "sklearn", "path": path, **fields}


def refused(response: httpx.Response, *words: str) -> str:
    assert response.status_code == 400, response.text
    error: str = response.json()["error"]
    for word in words:
        assert word in error, error
    return error


@pytest.mark.parametrize(
    "path",
    ["/etc/hostname", "../outside/digits.skops", "sub/../../outside/digits.skops", "escape.skops"],
)
def test_model_paths_outside_the_roots_are_refused(
    guarded: httpx.Client, root: Path, path: str
) -> None:
    given = path if path.startswith("/") else str(root / path)
    answer = guarded.post("/admin/models/digits/versions", json=launched(given))
    refused(answer, "path: ", "resolves outside the admin API's model roots", str(root))
    whole = guarded.post(
        "/admin/models", json={"name": "evil", "versions": [launched(given, version="1")]}
    )
    refused(whole, "versions[0].path: ", "resolves outside")
    models = guarded.get("/admin/models").json()["models"]
    assert [m["name"] for m in models] == ["digits"]
    assert [v["version"] for v in models[0]["versions"]] == ["1"]


def test_a_path_outside_the_roots_reveals_nothing_about_the_file(
    guarded: httpx.Client,
) -> None:
    there = guarded.post("/admin/models/digits/versions", json=launched("/etc/hostname"))
    missing = guarded.post("/admin/models/digits/versions", json=launched("/etc/no-such-file"))
    assert there.json()["error"].replace("hostname", "X") == missing.json()["error"].replace(
        "no-such-file", "X"
    )


def test_without_model_roots_the_api_launches_nothing(
    tmp_path: Path, local_models: LocalModels, digits_model: Path
) -> None:
    address = local_models.serve("digits", "sklearn", digits_model)
    text = secured_toml(None, f'  addresses = ["{address}"]')
    with gateway_client(text, tmp_path, local_models) as client:
        answer = client.post(
            "/admin/models/digits/versions", json=launched(str(digits_model)), headers=AUTH
        )
        refused(answer, "no [admin] model_roots are configured")
        other = local_models.serve("digits", "sklearn", digits_model, version="3")
        external = client.post(
            "/admin/models/digits/versions",
            json={"version": "3", "addresses": [other]},
            headers=AUTH,
        )
        assert external.status_code == 200, external.text


def test_file_options_are_confined_too(guarded: httpx.Client, root: Path) -> None:
    version = launched(str(root / "digits.skops"), options={"save_path": "/etc/cron.d/x"})
    answer = guarded.post("/admin/models/digits/versions", json=version)
    refused(answer, "options.save_path: ", "resolves outside")


def test_import_reference_plugins_are_refused(guarded: httpx.Client, root: Path) -> None:
    for plugin in ("json:loads", "os.path"):
        version = launched(str(root / "digits.skops"), plugin=plugin)
        answer = guarded.post("/admin/models/digits/versions", json=version)
        refused(answer, "plugin: ", "is an import reference", "import_plugins = true")


def test_trusting_the_file_is_refused(guarded: httpx.Client, root: Path) -> None:
    for option, value in (("trust_pickle", "true"), ("trust_pickle", "1"), ("trusted_types", "x")):
        version = launched(str(root / "digits.skops"), options={option: value})
        answer = guarded.post("/admin/models/digits/versions", json=version)
        refused(answer, f"options.{option}: ", "refused over the admin API", "trust_pickle = true")


def test_replicas_are_bounded(guarded: httpx.Client, root: Path) -> None:
    answer = guarded.put("/admin/models/digits/versions/1/replicas", json={"count": 4})
    refused(answer, "count: 4 managed wrappers", "max_replicas = 3")
    version = launched(str(root / "digits.skops"), count=1000)
    refused(guarded.post("/admin/models/digits/versions", json=version), "max_replicas = 3")


def read_launch(body: dict[str, Any], base: Path, policy: AdminPolicy) -> Any:
    config = read_version(Reader(body), base, policy)
    assert config.launch is not None
    return config.launch


def test_what_the_config_file_allows_passes(root: Path) -> None:
    inside = read_launch(launched("sub/../digits.skops"), root, AdminPolicy(model_roots=(root,)))
    assert inside.path == root / "digits.skops"
    policy = AdminPolicy(model_roots=(root,), import_plugins=True, trust_pickle=True)
    body = launched("digits.skops", plugin="json:loads", options={"trust_pickle": "true"})
    allowed = read_launch(body, root, policy)
    assert (allowed.plugin, allowed.options) == ("json:loads", {"trust_pickle": "true"})
    saved = read_launch(
        launched("digits.skops", options={"save_path": "sub/state.vw"}), root, policy
    )
    assert saved.options == {"save_path": str(root / "sub" / "state.vw")}
    not_trusted = read_launch(
        launched("digits.skops", options={"trust_pickle": "false"}), root, AdminPolicy((root,))
    )
    assert not_trusted.options == {"trust_pickle": "false"}


def test_the_config_file_itself_is_not_confined(root: Path) -> None:
    outside = root.parent / "outside" / "digits.skops"
    body = launched(str(outside), plugin="json:loads", options={"trust_pickle": "true"})
    config = read_version(Reader(body), root)
    assert config.launch is not None
    assert config.launch.path == outside


def test_admin_table_errors(tmp_path: Path) -> None:
    from ketch_gateway import parse_config

    with pytest.raises(ConfigError, match=r"admin.model_roots: 'nowhere' is not a folder"):
        parse_config('[admin]\nmodel_roots = ["nowhere"]\n', "k.toml", tmp_path)
    with pytest.raises(ConfigError, match=r"k.toml:2: admin.colour: unknown key"):
        parse_config('[admin]\ncolour = "red"\n', "k.toml", tmp_path)
    with pytest.raises(ConfigError, match=r"wrappers.env: item 0: 'A=B' is not a variable"):
        parse_config('[wrappers]\nenv = ["A=B"]\n', "k.toml", tmp_path)
    config = parse_config(
        '[admin]\nmodel_roots = ["."]\n[wrappers]\nmax_starting = 2\n', "k.toml", tmp_path
    )
    assert config.admin.model_roots == (tmp_path.resolve(),)
    assert config.wrappers.max_starting == 2


def test_failed_authentication_is_throttled(guarded: httpx.Client) -> None:
    wrong = {"Authorization": "Bearer guess"}
    for _ in range(3):
        assert guarded.get("/admin/models", headers=wrong).status_code == 403
    throttled = guarded.get("/admin/models", headers=wrong)
    assert throttled.status_code == 429
    wait = int(throttled.headers["retry-after"])
    assert 1 <= wait <= 200
    assert "too many failed authentications from testclient" in throttled.json()["error"]
    right = guarded.get("/admin/models")
    assert right.status_code == 429, "a throttled address's token is not even checked"
    assert metric(guarded, "ketch_admin_auth_failures_total", outcome="refused") == 3
    assert metric(guarded, "ketch_admin_auth_failures_total", outcome="throttled") == 2
    assert guarded.post("/apps/digits/predict", json={"input": [0.0] * 64}).status_code == 200


# --- a real gateway: wrappers it launches ---------------------------------------------------


@pytest.fixture(scope="module")
def secured_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the real gateway's configuration and state store are."""
    return tmp_path_factory.mktemp("secured")


@pytest.fixture(scope="module")
def secured(secured_folder: Path, root: Path) -> Iterator[GatewayProcess]:
    """A real gateway confined to ``root``, launching the digits model, with secrets to keep."""
    folder = secured_folder
    extra = f'\n[wrappers]\nenv = ["{PASSED_VARIABLE}"]\nmax_starting = 1\n'
    model = f'  plugin = "sklearn"\n  path = "{root / "digits.skops"}"'
    config = write_config(folder, secured_toml(root, model) + extra)
    env = {
        "KETCH_ADMIN_TOKEN": "another-token",
        SECRET_VARIABLE: "s3cret",
        PASSED_VARIABLE: "yes",
    }
    with start_gateway(config, env=env) as process:
        yield process


@pytest.fixture
def secured_admin(secured: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=secured.url, headers=AUTH, timeout=120) as client:
        yield client


def versions(admin: httpx.Client) -> dict[str, dict[str, Any]]:
    models = admin.get("/admin/models").json()["models"]
    return {v["version"]: v for m in models if m["name"] == "digits" for v in m["versions"]}


def recorded_changes(gateway_folder: Path) -> list[tuple[str, dict[str, Any]]]:
    async def read() -> list[tuple[str, dict[str, Any]]]:
        store = open_store(str(gateway_folder / "ketch-state.sqlite"))
        try:
            return [tuple(change) for change in await store.admin_changes()]  # type: ignore[misc]
        finally:
            await store.close()

    return asyncio.run(read())


def test_wrappers_do_not_see_the_gateways_secrets(secured_admin: httpx.Client) -> None:
    pid = versions(secured_admin)["1"]["wrappers"][0]["pid"]
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    environment = dict(entry.split("=", 1) for entry in raw.decode().split("\0") if "=" in entry)
    assert "KETCH_ADMIN_TOKEN" not in environment
    assert SECRET_VARIABLE not in environment
    assert environment[PASSED_VARIABLE] == "yes"
    assert environment["PATH"] == os.environ["PATH"]


def test_a_failed_add_answers_the_wrappers_error_and_leaves_nothing(
    secured_admin: httpx.Client, secured_folder: Path, root: Path
) -> None:
    bad = launched(str(root / "notes.skops"), version="bad")
    answer = secured_admin.post("/admin/models/digits/versions", json=bad)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert "digits vbad #0: exited with status 1 before reporting ready" in error
    assert "cannot load model 'digits'" in error
    assert "bad" not in versions(secured_admin)
    rollout = secured_admin.put("/admin/models/digits/version", json={"version": "bad"})
    assert rollout.status_code == 404
    whole = secured_admin.post(
        "/admin/models", json={"name": "broken", "versions": [dict(bad, version="1")]}
    )
    assert whole.status_code == 422, whole.text
    names = [m["name"] for m in secured_admin.get("/admin/models").json()["models"]]
    assert names == ["digits"]
    assert secured_admin.get("/v2/health/ready").status_code == 200
    recorded = recorded_changes(secured_folder)
    assert not [body for _, body in recorded if "bad" in str(body) or "broken" in str(body)]


def test_an_allowed_version_still_works(secured_admin: httpx.Client, root: Path) -> None:
    added = secured_admin.post(
        "/admin/models/digits/versions", json=launched(str(root / "sub/../digits.skops"))
    )
    assert added.status_code == 200, added.text
    assert added.json()["managed"] == 1
    scaled = secured_admin.put("/admin/models/digits/versions/2/replicas", json={"count": 2})
    assert scaled.status_code == 200, scaled.text
    assert len(scaled.json()["wrappers"]) == 2
    assert all(w["pid"] for w in scaled.json()["wrappers"])
    request = {
        "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP64", "data": [0] * 64}]
    }
    answer = secured_admin.post("/v2/models/digits/versions/2/infer", json=request)
    assert answer.status_code == 200, answer.text
    assert (
        secured_admin.put("/admin/models/digits/versions/2/replicas", json={"count": 1}).json()[
            "managed"
        ]
        == 1
    )


def test_a_failed_scale_keeps_the_wrappers_it_had(secured_admin: httpx.Client, root: Path) -> None:
    copy = root / "sub" / "fragile.skops"
    shutil.copy(root / "digits.skops", copy)
    added = secured_admin.post(
        "/admin/models/digits/versions", json=launched(str(copy), version="fragile")
    )
    assert added.status_code == 200, added.text
    copy.write_text("overwritten\n")
    scaled = secured_admin.put("/admin/models/digits/versions/fragile/replicas", json={"count": 2})
    assert scaled.status_code == 422, scaled.text
    assert "cannot load model 'digits'" in scaled.json()["error"]
    fragile = versions(secured_admin)["fragile"]
    assert fragile["managed"] == 1
    assert len(fragile["wrappers"]) == 1
    assert len(fragile["replicas"]) == 1
