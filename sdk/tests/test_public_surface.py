"""``import ketch``: the contract without gRPC, and an ``__all__`` that lists every public name."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

import ketch


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
