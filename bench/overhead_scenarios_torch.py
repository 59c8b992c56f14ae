"""bench/wrapper_overhead.py scenarios for the PyTorch plugin: one MLP in each format.

The model is a multilayer perceptron on digits (64 → 512 → 512 → 10), trained for
a few seconds in a child process, saved as TorchScript (with a metadata file beside
it), as a ``torch.export`` archive, and as ONNX; each file is one scenario.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench_common import Scenario, repeat_rows

HIDDEN = 512
TRAINING_STEPS = 60
INPUT = "input"  # what torch.export calls nn.Sequential's argument; the other formats follow
ROWS_FILE = "digits.npy"
# One thread per operation, in process and in the server alike: on a machine of two
# cores that also runs the client, the echo server and a second wrapper, two OpenMP
# threads per process wait on each other's cores, and the in-process column suffered
# most (tens of milliseconds at batch 512, against 2 ms).
THREADS = 1


def _mlp() -> Any:
    """64 → 512 → 512 → 10, ending in a softmax (PyTorch is imported only when a scenario runs)."""
    from torch import nn

    return nn.Sequential(
        nn.Linear(64, HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, 10),
        nn.Softmax(dim=1),
    )


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    rows, labels = load_digits(return_X_y=True)
    return (rows / 16.0).astype(np.float32), labels.astype(np.int64)


def _trained(rows: np.ndarray, labels: np.ndarray) -> Any:
    import torch
    import torch.nn.functional as F  # noqa: N812

    torch.manual_seed(0)
    model = _mlp()
    logits = model[:-1]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inputs, targets = torch.from_numpy(rows), torch.from_numpy(labels)
    for _ in range(TRAINING_STEPS):
        optimizer.zero_grad()
        F.cross_entropy(logits(inputs), targets).backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    return model.eval()


def save_model(file_format: str, folder: Path) -> Path:
    """Train the MLP and save it in ``file_format``, with the digits beside it; its path."""
    import torch

    rows, labels = _digits()
    np.save(folder / ROWS_FILE, rows)
    model = _trained(rows, labels)
    example = (torch.from_numpy(rows[:4]),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript and its ONNX exporter are deprecated
        if file_format == "torchscript":
            path = folder / "mlp.pt"
            torch.jit.save(torch.jit.script(model), str(path))
            metadata = {"inputs": [{"name": INPUT, "datatype": "FP32", "shape": [-1, 64]}]}
            (folder / "mlp.pt.ketch.json").write_text(json.dumps(metadata))
        elif file_format == "export":
            path = folder / "mlp.pt2"
            batch = torch.export.Dim("batch")
            exported = torch.export.export(model, example, dynamic_shapes=({0: batch},))
            torch.export.save(exported, str(path))
        else:
            path = folder / "mlp.onnx"
            torch.onnx.export(
                model,
                example,
                str(path),
                dynamo=False,
                input_names=[INPUT],
                output_names=["probabilities"],
                dynamic_axes={INPUT: {0: "batch"}, "probabilities": {0: "batch"}},
            )
    return path


def _scenario(file_format: str, folder: Path) -> Scenario:
    """Train and save in a child process, so that this one holds only what a server holds.

    No autograd state and no scikit-learn (with its own OpenMP runtime) beside the
    model that the in-process column times.
    """
    result = subprocess.run(
        [sys.executable, __file__, file_format, str(folder)],
        capture_output=True,
        text=True,
        check=True,
    )
    path = Path(result.stdout.strip().splitlines()[-1])
    rows = np.load(folder / ROWS_FILE)
    name = f"torch MLP 64-512-512-10 ({file_format})"
    return Scenario(name, "torch", path, {INPUT: repeat_rows(rows)}, {"threads": str(THREADS)})


def _builder(file_format: str) -> Callable[[Path], Scenario]:
    def build(folder: Path) -> Scenario:
        return _scenario(file_format, folder)

    return build


SCENARIOS: dict[str, Callable[[Path], Scenario]] = {
    f"torch-mlp-{file_format}": _builder(file_format)
    for file_format in ("torchscript", "export", "onnx")
}


if __name__ == "__main__":
    print(save_model(sys.argv[1], Path(sys.argv[2])))
