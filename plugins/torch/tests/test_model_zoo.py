"""The shapes people build in PyTorch, saved as ``torch.export`` archives and TorchScript,
each served by a real ``ketch serve`` and compared with the module in process: the next
common shape that breaks is caught here first."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.export import Dim
from torch_test_models import (
    DigitsClassifier,
    ImageScorer,
    MaskedScorer,
    save_export,
    save_export_with_dims,
    save_metadata,
    save_torchscript,
)

from ketch import WrapperClient, WrapperProcess, start_wrapper

Digits = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class ZooModel:
    """A saved module, the module itself, rows by input name, and the served output names."""

    path: Path
    module: nn.Module
    inputs: dict[str, np.ndarray]
    outputs: tuple[str, ...]
    options: dict[str, str] = field(default_factory=dict)


def mlp_export(folder: Path, digits: Digits, classifier: DigitsClassifier) -> ZooModel:
    rows = digits[2][:50]
    path = save_export(classifier, [torch.from_numpy(rows[:4])], folder / "mlp.pt2")
    return ZooModel(path, classifier, {"pixels": rows}, ("probabilities", "label"))


def mlp_torchscript(folder: Path, digits: Digits, classifier: DigitsClassifier) -> ZooModel:
    rows = digits[2][:50]
    path = save_torchscript(classifier, folder / "mlp.pt")
    options = {"inputs": "pixels:FP32:64", "outputs": "probabilities,label"}
    return ZooModel(path, classifier, {"pixels": rows}, ("probabilities", "label"), options)


def images(count: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(height * width).random((count, 3, height, width), np.float32)


def cnn_export_with_dims(folder: Path, digits: Digits, classifier: DigitsClassifier) -> ZooModel:
    torch.manual_seed(5)
    module = ImageScorer().eval()
    side = Dim("side", min=8, max=256)
    path = save_export_with_dims(
        module,
        [torch.from_numpy(images(2, 32, 32))],
        folder / "cnn.pt2",
        ({0: Dim("batch"), 2: side, 3: side},),
    )
    return ZooModel(path, module, {"image": images(6, 40, 40)}, ("output",))


def cnn_torchscript(folder: Path, digits: Digits, classifier: DigitsClassifier) -> ZooModel:
    torch.manual_seed(6)
    module = ImageScorer().eval()
    path = save_torchscript(module, folder / "cnn.pt")
    save_metadata(
        path, {"inputs": [{"name": "image", "datatype": "FP32", "shape": [-1, 3, -1, -1]}]}
    )
    return ZooModel(path, module, {"image": images(5, 24, 17)}, ("output",))


def two_inputs_export(folder: Path, digits: Digits, classifier: DigitsClassifier) -> ZooModel:
    torch.manual_seed(7)
    module = MaskedScorer().eval()
    rows = digits[2][:20]
    mask = np.random.default_rng(8).random(rows.shape) > 0.5
    examples = [torch.from_numpy(rows[:4]), torch.from_numpy(mask[:4])]
    path = save_export(module, examples, folder / "masked.pt2")
    return ZooModel(path, module, {"pixels": rows, "mask": mask}, ("output_0", "output_1"))


ZOO: dict[str, Callable[[Path, Digits, DigitsClassifier], ZooModel]] = {
    "mlp-export": mlp_export,
    "mlp-torchscript": mlp_torchscript,
    "cnn-export-with-dims": cnn_export_with_dims,
    "cnn-torchscript": cnn_torchscript,
    "two-inputs-export": two_inputs_export,
}


@pytest.fixture(scope="module", params=sorted(ZOO))
def served(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    digits: Digits,
    classifier: DigitsClassifier,
) -> Iterator[tuple[ZooModel, WrapperProcess]]:
    zoo = ZOO[request.param](tmp_path_factory.mktemp("torch-zoo"), digits, classifier)
    options = {"threads": "1", **zoo.options}
    with start_wrapper("torch", zoo.path, options=options, echo_stderr=False) as process:
        yield zoo, process


def expected_outputs(zoo: ZooModel) -> dict[str, np.ndarray]:
    with torch.inference_mode():
        result = zoo.module(*(torch.from_numpy(array) for array in zoo.inputs.values()))
    if isinstance(result, dict):
        return {name: result[name].numpy() for name in zoo.outputs}
    if isinstance(result, tuple):
        return {name: value.numpy() for name, value in zip(zoo.outputs, result, strict=True)}
    return {zoo.outputs[0]: result.numpy()}


def test_served_model_answers_as_the_module(served: tuple[ZooModel, WrapperProcess]) -> None:
    zoo, process = served
    expected = expected_outputs(zoo)
    with WrapperClient(process.address, model=process.ready.model) as client:
        metadata = client.model_metadata()
        assert [spec.name for spec in metadata.inputs] == list(zoo.inputs)
        assert [spec.name for spec in metadata.outputs] == list(zoo.outputs)
        outputs = client.infer(zoo.inputs)
    for name, want in expected.items():
        np.testing.assert_allclose(outputs[name], want, rtol=1e-4, atol=1e-5)
