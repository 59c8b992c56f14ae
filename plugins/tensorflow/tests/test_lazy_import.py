"""Importing TensorFlow: only on first load, quietly, and with clear errors when it cannot be."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ketch_tensorflow.importing import is_startup_noise
from ketch_tensorflow.startup import process_age_seconds


def run_python(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_discovery_does_not_import_tensorflow() -> None:
    output = run_python(
        """
        import sys
        import ketch_tensorflow
        import ketch_tensorflow.plugin
        from ketch import select_framework
        select_framework("tensorflow")
        print("imported:", sorted({"tensorflow", "keras"} & set(sys.modules)))
        """
    )
    assert "imported: []" in output


def test_without_tensorflow_a_load_names_the_extras(digits_keras: Path) -> None:
    output = run_python(
        f"""
        import sys
        sys.modules["tensorflow"] = None  # what Python does for a module that is not there
        from ketch import ModelLoadError, ModelSpec, select_framework
        try:
            select_framework("tensorflow").load(ModelSpec.from_path({str(digits_keras)!r}))
        except ModelLoadError as error:
            print("refused:", error)
        """
    )
    assert "refused: TensorFlow is not installed" in output
    assert "install ketch-tensorflow[cpu] or ketch-tensorflow[gpu]" in output


def test_keras_on_another_backend_is_refused(digits_keras: Path) -> None:
    output = run_python(
        f"""
        from ketch import ModelLoadError, ModelSpec, select_framework
        try:
            select_framework("tensorflow").load(ModelSpec.from_path({str(digits_keras)!r}))
        except ModelLoadError as error:
            print("refused:", error)
        """,
        KERAS_BACKEND="numpy",
    )
    assert "refused: Keras is set to the 'numpy' backend (KERAS_BACKEND)" in output


@pytest.mark.parametrize(
    "line",
    [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1795927597.331005   18809 port.cc:153] oneDNN custom operations are on.",
        "I0000 00:00:1795927547.328251   18097 cpu_feature_guard.cc:227] This TensorFlow binary",
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild "
        "TensorFlow with the appropriate compiler flags.",
    ],
)
def test_informational_startup_lines_are_noise(line: str) -> None:
    assert is_startup_noise(line)


@pytest.mark.parametrize(
    "line",
    [
        "W0000 00:00:1795927597.3 12 gpu_device.cc:2344] Cannot dlopen some GPU libraries.",
        "E0000 00:00:1795927597.3 12 cuda_dnn.cc:8310] Unable to register cuDNN factory",
        "2026-11-29 04:51:46,954 INFO ketch.serve: serving model 'order' version 1",
        "Traceback (most recent call last):",
    ],
)
def test_warnings_errors_and_other_lines_are_kept(line: str) -> None:
    assert not is_startup_noise(line)


def test_process_age_is_read_from_proc() -> None:
    if not Path("/proc/self/stat").exists():
        pytest.skip("this system has no /proc")
    age = process_age_seconds()
    assert age is not None
    assert age > 0
