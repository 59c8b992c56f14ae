"""``ketch rollout``: a real gateway process, steered from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_test_support import ADMIN_TOKEN, gateway_env

from ketch_gateway import GatewayProcess, start_gateway, write_config


@pytest.fixture(scope="module")
def two_versions(
    tmp_path_factory: pytest.TempPathFactory, digits_model: Path
) -> Iterator[GatewayProcess]:
    versions = "".join(
        f'\n  [[models.versions]]\n  version = "{v}"\n  plugin = "sklearn"\n'
        f'  path = "{digits_model}"\n'
        for v in ("1", "2")
    )
    text = f"""
[gateway]
admin_token = "{ADMIN_TOKEN}"

[[models]]
name = "digits"
version = "1"
{versions}
"""
    config = write_config(tmp_path_factory.mktemp("rollout-cli"), text)
    with start_gateway(config, env=gateway_env()) as process:
        yield process


def ketch_rollout(*arguments: str, token: str = ADMIN_TOKEN) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "KETCH_ADMIN_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "ketch", "rollout", *arguments],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


def test_start_see_pause_and_abort_a_rollout(two_versions: GatewayProcess) -> None:
    url = two_versions.url
    started = ketch_rollout(
        "start",
        "digits",
        "--url",
        url,
        "--to",
        "2",
        "--steps",
        "0.1,0.5,1.0",
        "--min-feedback",
        "50",
    )
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["rollout"]["share"] == 0.1
    status = ketch_rollout("status", "digits", "--url", url)
    assert json.loads(status.stdout)["split"] == {"1": 0.9, "2": 0.1}
    assert ketch_rollout("pause", "digits", "--url", url).returncode == 0
    aborted = ketch_rollout("abort", "digits", "--url", url, "--reason", "testing")
    assert aborted.returncode == 0, aborted.stderr
    rollout = json.loads(aborted.stdout)["rollout"]
    assert (rollout["status"], rollout["reason"]) == ("aborted", "testing")
    listed = json.loads(ketch_rollout("status", "--url", url).stdout)
    assert [m["model"] for m in listed["models"]] == ["digits"]


def test_errors_are_the_gateways_words(two_versions: GatewayProcess) -> None:
    url = two_versions.url
    unknown = ketch_rollout("start", "digits", "--url", url, "--to", "9")
    assert unknown.returncode == 1
    assert "400" in unknown.stderr
    assert "unknown version '9'" in unknown.stderr
    nothing = ketch_rollout("pause", "digits", "--url", url)
    assert nothing.returncode == 1
    assert "no rollout running" in nothing.stderr
    wrong = ketch_rollout("status", "--url", url, token="nope")
    assert wrong.returncode == 1
    assert "403" in wrong.stderr
    assert ketch_rollout("start", "digits", "--url", url).returncode == 2
    gone = ketch_rollout("status", "--url", "http://127.0.0.1:9")
    assert gone.returncode == 1
    assert "cannot reach" in gone.stderr
