"""``import ketch``: the contract without gRPC, and an ``__all__`` that lists every public name."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import ketch
from ketch import telemetry


def test_import_ketch_loads_neither_grpc_nor_protobuf() -> None:
    probe = (
        "import sys, ketch\n"
        "from ketch import hookimpl, ModelSpec, Signature, TensorSpec, Capabilities, KetchError\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'google')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_all_lists_every_public_name_and_each_resolves() -> None:
    eager = {
        name
        for name, value in vars(ketch).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    eager -= {"annotations", "importlib", "TYPE_CHECKING", "Any"}
    loaded_on_use = set(ketch._LOADED_ON_USE)
    assert set(ketch.__all__) == eager | loaded_on_use | {"__version__"}
    assert len(ketch.__all__) == len(set(ketch.__all__))
    assert dir(ketch) == sorted(ketch.__all__)
    for name in ketch.__all__:
        assert getattr(ketch, name) is not None


def test_a_name_loaded_on_use_is_its_modules_own() -> None:
    for name, module in ketch._LOADED_ON_USE.items():
        assert getattr(ketch, name) is getattr(importlib.import_module(module), name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        getattr(ketch, "NoSuchThing")  # noqa: B009


def test_a_wrapper_without_metrics_does_not_import_prometheus_client(
    softmax_path: Path, test_plugins_env: dict[str, str]
) -> None:
    """``ketch serve`` without ``--metrics-port``: start, load and answer, no prometheus_client."""
    probe = (
        "import sys\n"
        "from ketch import ModelSpec, WrapperClient, WrapperServer, select_framework\n"
        "from ketch.cli import main\n"
        "import numpy as np\n"
        "from ketch.telemetry import tracing_from_environment, wrapper_telemetry\n"
        "from sdk_test_plugins import REFERENCE_PLUGIN\n"
        f"spec = ModelSpec.from_path({str(softmax_path)!r})\n"
        "tracing = tracing_from_environment('ketch-serve')\n"
        "telemetry = wrapper_telemetry('m', '1', 'ref', 'cpu', metrics=False, tracing=tracing)\n"
        "server = WrapperServer(select_framework(REFERENCE_PLUGIN), spec, telemetry=telemetry)\n"
        "address = server.start()\n"
        "server.load()\n"
        "with WrapperClient(address) as client:\n"
        "    client.infer({'input': np.zeros((1, 64), np.float32)})\n"
        "server.stop(0)\n"
        "print(sorted(m for m in sys.modules if m.startswith('prometheus_client')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **test_plugins_env},
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_the_telemetry_names_loaded_on_use_resolve() -> None:
    for name, module in telemetry._LOADED_ON_USE.items():
        assert getattr(telemetry, name) is getattr(importlib.import_module(module), name)
    assert set(telemetry._LOADED_ON_USE) <= set(telemetry.__all__)
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        getattr(telemetry, "NoSuchThing")  # noqa: B009
