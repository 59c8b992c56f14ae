from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sdk_test_plugins

from ketch import (
    DISABLE_VARIABLE,
    EXTRA_VARIABLE,
    ModelLoadError,
    ModelSpec,
    PluginError,
    disabled_plugins,
    extra_plugins,
    installed_plugins,
    select_framework,
)
from ketch_conformance.reference import SoftmaxRegressionPlugin


def test_installed_plugins_come_from_entry_points() -> None:
    installed = installed_plugins()
    assert installed["sklearn"].value == "ketch_sklearn.plugin"


def test_selects_an_installed_plugin_by_name() -> None:
    framework = select_framework("sklearn")
    assert framework.name == "sklearn"
    assert not framework.observes


def test_unknown_plugin_lists_the_installed_ones() -> None:
    with pytest.raises(
        PluginError, match=r"no Ketch plugin named 'sklaern' is installed .*installed: .*sklearn"
    ):
        select_framework("sklaern")


def test_disabled_plugin_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DISABLE_VARIABLE, "other, sklearn")
    assert disabled_plugins() == {"other", "sklearn"}
    with pytest.raises(PluginError, match="'sklearn' is disabled by KETCH_DISABLE_PLUGINS"):
        select_framework("sklearn")


def test_import_reference_selects_a_plugin_object(softmax_path: Path) -> None:
    framework = select_framework("ketch_conformance.reference:plugin")
    assert framework.observes
    model = framework.load(ModelSpec.from_path(softmax_path))
    assert framework.signature(model).inputs[0].shape == (-1, 64)


def test_bad_import_reference() -> None:
    with pytest.raises(PluginError, match="'no_such_module' cannot be imported"):
        select_framework("no_such_module:plugin")
    with pytest.raises(PluginError, match="has no attribute 'nothing'"):
        select_framework("ketch_conformance.reference:nothing")


def test_misspelt_hook_fails_loudly() -> None:
    with pytest.raises(
        PluginError, match=r"(?s)unknown hook .ketch_bach_predict..*the hooks are ketch_load"
    ):
        select_framework("typo", plugin=sdk_test_plugins.MisspeltHook())


def test_missing_required_hook_is_named() -> None:
    with pytest.raises(
        PluginError, match=r"does not implement the required hook.*ketch_batch_predict"
    ):
        select_framework("nopredict", plugin=sdk_test_plugins.NoPredict())


def test_hook_with_a_wrong_parameter_is_refused() -> None:
    class WrongParameter(SoftmaxRegressionPlugin):
        def ketch_place(self, model: object, where: str) -> object:  # type: ignore[override]
            return model

    with pytest.raises(PluginError, match=r"(?s)breaks the hook spec.*where"):
        select_framework("wrong", plugin=WrongParameter())


def test_wrapper_only_plugin_is_not_a_framework() -> None:
    with pytest.raises(PluginError, match="only wraps hooks"):
        select_framework("counting", plugin=sdk_test_plugins.CountingWrapper())


def test_cross_cutting_plugin_sees_every_predict(softmax_path: Path) -> None:
    counter = sdk_test_plugins.CountingWrapper()
    framework = select_framework("ketch_conformance.reference:plugin", cross_cutting=[counter])
    model = framework.load(ModelSpec.from_path(softmax_path))
    framework.batch_predict(model, {"input": np.zeros((3, 64), np.float32)})
    framework.batch_predict(model, {"input": np.zeros((2, 64), np.float32)})
    assert (counter.calls, counter.rows) == (2, 5)


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    framework = select_framework("ketch_conformance.reference:plugin")
    with pytest.raises(ModelLoadError, match="no file or directory at"):
        framework.load(ModelSpec.from_path(tmp_path / "missing.npz"))
    other = tmp_path / "model.onnx"
    other.write_bytes(b"not ours")
    with pytest.raises(ModelLoadError, match="does not recognise the model at"):
        framework.load(ModelSpec.from_path(other))
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match="not a softmax model archive"):
        framework.load(ModelSpec.from_path(broken))


def test_extra_plugins_named_by_reference_wrap_the_framework(softmax_path: Path) -> None:
    environ = {EXTRA_VARIABLE: "sdk_test_plugins:counting, sdk_test_plugins:counting"}
    assert extra_plugins(environ) == ("sdk_test_plugins:counting",)
    before = sdk_test_plugins.counting.calls
    framework = select_framework("ketch_conformance.reference:plugin", environ=environ)
    model = framework.load(ModelSpec.from_path(softmax_path))
    framework.batch_predict(model, {"input": np.zeros((2, 64), np.float32)})
    assert sdk_test_plugins.counting.calls == before + 1
    without_autoload = select_framework(
        "ketch_conformance.reference:plugin", autoload=False, environ=environ
    )
    assert without_autoload.manager.get_plugin("sdk_test_plugins:counting") is None


def test_extra_plugin_that_is_a_framework_is_refused() -> None:
    environ = {EXTRA_VARIABLE: "ketch_conformance.reference:plugin"}
    with pytest.raises(PluginError, match=r"KETCH_EXTRA_PLUGINS names .* not a cross-cutting"):
        select_framework("sklearn", environ=environ)
    with pytest.raises(PluginError, match="'no_such_module' cannot be imported"):
        select_framework("sklearn", environ={EXTRA_VARIABLE: "no_such_module:plugin"})
