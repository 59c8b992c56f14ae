"""The pacing plugin slows the models it is told to, whatever their framework plugin."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from ketch import EXTRA_VARIABLE, ModelLoadError, ModelRuntime, ModelSpec, select_framework
from ketch_conformance import pacing
from ketch_conformance.reference import plugin as reference_plugin


@pytest.mark.parametrize(
    ("setting", "model", "seconds"),
    [
        ("", "weak", 0.0),
        ("0.25", "weak", 0.25),
        ("weak=0.4,mlp_slow=0.2", "weak", 0.4),
        ("weak=0.4, mlp_slow = 0.2", "mlp_slow", 0.2),
        ("weak=0.4", "good", 0.0),
    ],
)
def test_a_setting_names_the_delay_of_each_model(setting: str, model: str, seconds: float) -> None:
    assert pacing.predict_delay_for(model, setting) == seconds


@pytest.mark.parametrize("setting", ["soon", "-1", "weak=", "=0.2", "weak=0.2,mlp", "nan"])
def test_a_malformed_setting_says_what_is_expected(setting: str) -> None:
    with pytest.raises(ValueError, match="expected SECONDS or NAME=SECONDS"):
        pacing.predict_delay_for("weak", setting)


def load(path: Path, name: str, monkeypatch: pytest.MonkeyPatch, setting: str) -> ModelRuntime:
    """The reference model loaded as ``name``, with the pacing plugin from the environment."""
    monkeypatch.setenv(pacing.PREDICT_DELAY_VARIABLE, setting)
    framework = select_framework(
        "reference",
        plugin=reference_plugin,
        cross_cutting=[pacing.Pacing()],
        environ={},
    )
    return ModelRuntime.load(framework, ModelSpec.from_path(path, name=name))


def delays(runtime: ModelRuntime) -> list[float]:
    plugins = runtime.framework.manager.get_plugins()
    return [plugin.delay for plugin in plugins if isinstance(plugin, pacing.Pacing)]


def test_the_named_model_waits_and_the_others_do_not(
    reference_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = {"input": np.zeros((2, 64), np.float32)}
    slow = load(reference_model, "slow", monkeypatch, "slow=0.05")
    started = time.monotonic()
    answered = slow.predict(rows)
    assert time.monotonic() - started >= 0.05  # a sleep never ends early
    assert len(answered["probabilities"]) == 2
    plugins = slow.framework.manager.get_plugins()
    assert [p.delay for p in plugins if isinstance(p, pacing.Pacing)] == [0.05]
    other = load(reference_model, "other", monkeypatch, "slow=0.05")
    assert [
        p.delay for p in other.framework.manager.get_plugins() if isinstance(p, pacing.Pacing)
    ] == [0.0]


def test_an_explicit_delay_needs_no_environment() -> None:
    assert pacing.Pacing(predict_delay=0.3).delay == 0.3


def test_the_module_plugin_is_what_extra_plugins_names() -> None:
    framework = select_framework(
        "reference", plugin=reference_plugin, environ={EXTRA_VARIABLE: pacing.REFERENCE}
    )
    assert pacing.plugin in framework.manager.get_plugins()


def test_a_malformed_variable_stops_the_load(
    reference_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ModelLoadError, match="KETCH_PACING_PREDICT_DELAY: expected SECONDS"):
        load(reference_model, "slow", monkeypatch, "slow=later")
