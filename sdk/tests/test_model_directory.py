"""``ketch serve PLUGIN DIRECTORY``: the one model a directory holds (KServe's /mnt/models)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sdk_test_plugins import REFERENCE_PLUGIN

from ketch import (
    Framework,
    ModelLoadError,
    ModelRuntime,
    ModelSpec,
    WrapperClient,
    WrapperStartError,
    select_framework,
    start_wrapper,
)
from ketch.model_directory import load_model
from ketch_conformance.reference import SoftmaxModel


def framework() -> Framework:
    return select_framework(REFERENCE_PLUGIN, autoload=False)


@pytest.fixture
def model_dir(tmp_path: Path, softmax_path: Path) -> Path:
    """A directory as KServe's storage initializer leaves it: the model and a stray file."""
    directory = tmp_path / "models"
    directory.mkdir()
    shutil.copy(softmax_path, directory / "digits.npz")
    (directory / "README.txt").write_text("trained on the first 1,000 digits\n")
    return directory


def test_a_directory_with_one_model_serves_it(
    model_dir: Path, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    rows = digits[0][:8]
    with (
        start_wrapper(REFERENCE_PLUGIN, model_dir, name="digits") as wrapper,
        WrapperClient(wrapper.address, model="digits") as client,
    ):
        outputs = client.infer({"input": rows})
    with np.load(model_dir / "digits.npz") as archive:
        expected = SoftmaxModel(archive["weights"], archive["bias"]).predict(rows)
    np.testing.assert_array_equal(outputs["label"], expected["label"])


def test_the_runtime_names_the_file_it_loaded(model_dir: Path) -> None:
    runtime = ModelRuntime.load(framework(), ModelSpec(str(model_dir), name="digits"))
    assert runtime.spec.path == str(model_dir / "digits.npz")
    assert runtime.name == "digits"


def test_hidden_entries_and_lost_found_are_not_candidates(model_dir: Path) -> None:
    shutil.copy(model_dir / "digits.npz", model_dir / ".old.npz")
    (model_dir / "lost+found").mkdir()
    (model_dir / "..data").mkdir()  # what a ConfigMap or Secret volume holds
    spec, _ = load_model(framework(), ModelSpec(str(model_dir), name="digits"))
    assert Path(spec.path).name == "digits.npz"


def test_a_directory_without_a_model_names_what_it_holds(tmp_path: Path) -> None:
    (tmp_path / "README.txt").write_text("no model here")
    (tmp_path / "data").mkdir()
    with pytest.raises(ModelLoadError) as caught:
        load_model(framework(), ModelSpec(str(tmp_path), name="digits"))
    message = str(caught.value)
    assert "does not recognise a model in the directory" in message
    assert "README.txt, data/" in message


def test_an_empty_directory_says_so(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"holds nothing \(it is empty\)"):
        load_model(framework(), ModelSpec(str(tmp_path), name="digits"))


def test_a_directory_with_several_models_names_them(model_dir: Path) -> None:
    shutil.copy(model_dir / "digits.npz", model_dir / "digits-v2.npz")
    with pytest.raises(ModelLoadError) as caught:
        load_model(framework(), ModelSpec(str(model_dir), name="digits"))
    message = str(caught.value)
    assert "holds 2 models" in message
    assert "(digits-v2.npz, digits.npz)" in message
    assert str(model_dir / "digits-v2.npz") in message


def test_a_broken_model_counts_as_one_and_its_own_error_is_raised(tmp_path: Path) -> None:
    (tmp_path / "broken.npz").write_bytes(b"not an archive")
    with pytest.raises(ModelLoadError, match=r"broken\.npz is not a softmax model archive"):
        load_model(framework(), ModelSpec(str(tmp_path), name="digits"))


def test_ketch_serve_reports_the_directory_listing_and_exits(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"\0" * 16)
    with pytest.raises(
        WrapperStartError,
        match=r"exited with status 1(?s:.*)does not recognise a model in the dir.*weights\.bin",
    ):
        start_wrapper(REFERENCE_PLUGIN, tmp_path, name="digits", echo_stderr=False)
