"""bench/wrapper_overhead.py scenarios for PyTorch models and the same models as ONNX graphs.

Two models, each saved as TorchScript (with a metadata file beside it), as a
``torch.export`` archive, and as ONNX (``torch.onnx.export``); each file is one
scenario. The TorchScript and ``torch.export`` files are served by the torch
plugin, the ONNX graph by the onnx plugin on onnxruntime, so that one run sets the
engines side by side on the same weights:

- an MLP on digits (64 → 512 → 512 → 10), trained for a few seconds;
- a Transformer encoder (two layers, width 64, four heads, sequences of 16) with a
  pooled linear head, its weights as initialised (seeded): a fixed shape of work.

Models are built and saved in a child process, so that this one holds only what a
server holds: no autograd state and no scikit-learn (with its own OpenMP runtime)
beside the model that the in-process column times.
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
WIDTH, HEADS, FEED_FORWARD, LAYERS, STEPS = 64, 4, 256, 2, 16
ROWS_FILE = "rows.npy"
# One thread per operation, in process and in the server alike: on a machine of two
# cores that also runs the client, the echo server and a second wrapper, two OpenMP
# threads per process wait on each other's cores, and the in-process column suffered
# most (tens of milliseconds at batch 512, against 2 ms).
THREADS = 1
FAMILIES = {"mlp": "MLP 64-512-512-10", "transformer": "Transformer encoder 2x64, 16 steps"}
INPUTS = {"mlp": "input", "transformer": "tokens"}  # torch.export's names; the others follow
ENGINES = {"torchscript": "torch", "export": "torch", "onnx": "onnx"}


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


def _encoder() -> Any:
    """Two encoder layers over ``tokens`` [rows, 16, 64], mean-pooled into ten scores."""
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layer = nn.TransformerEncoderLayer(
                WIDTH, HEADS, FEED_FORWARD, dropout=0.0, batch_first=True
            )
            self.encoder = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
            self.head = nn.Linear(WIDTH, 10)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.head(self.encoder(tokens).mean(dim=1))  # type: ignore[no-any-return]

    torch.manual_seed(0)
    return Encoder().eval()


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    rows, labels = load_digits(return_X_y=True)
    return (rows / 16.0).astype(np.float32), labels.astype(np.int64)


def _trained_mlp(rows: np.ndarray, labels: np.ndarray) -> Any:
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


def _model_and_rows(model_name: str, folder: Path) -> tuple[Any, np.ndarray]:
    if model_name == "mlp":
        rows, labels = _digits()
        model = _trained_mlp(rows, labels)
    else:
        rows = np.random.default_rng(0).standard_normal((64, STEPS, WIDTH)).astype(np.float32)
        model = _encoder()
    np.save(folder / f"{model_name}-{ROWS_FILE}", rows)
    return model, rows


def save_model(model_name: str, file_format: str, folder: Path) -> Path:
    """Build ``model_name`` and save it in ``file_format``, with its rows beside it; its path."""
    import torch

    model, rows = _model_and_rows(model_name, folder)
    name = INPUTS[model_name]
    example = (torch.from_numpy(rows[:4]),)
    row_shape = list(rows.shape[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript and its ONNX exporter are deprecated
        if file_format == "torchscript":
            path = folder / f"{model_name}.pt"
            torch.jit.save(torch.jit.script(model), str(path))
            metadata = {"inputs": [{"name": name, "datatype": "FP32", "shape": [-1, *row_shape]}]}
            path.with_name(path.name + ".ketch.json").write_text(json.dumps(metadata))
        elif file_format == "export":
            path = folder / f"{model_name}.pt2"
            batch = torch.export.Dim("batch")
            exported = torch.export.export(model, example, dynamic_shapes=({0: batch},))
            torch.export.save(exported, str(path))
        else:
            path = folder / f"{model_name}.onnx"
            torch.onnx.export(
                model,
                example,
                str(path),
                dynamo=False,
                input_names=[name],
                output_names=["scores"],
                dynamic_axes={name: {0: "batch"}, "scores": {0: "batch"}},
            )
    return path


def _scenario(model_name: str, file_format: str, folder: Path) -> Scenario:
    """Save the model in a child process (see the module's docstring); the scenario."""
    result = subprocess.run(
        [sys.executable, __file__, model_name, file_format, str(folder)],
        capture_output=True,
        text=True,
        check=True,
    )
    path = Path(result.stdout.strip().splitlines()[-1])
    rows = np.load(folder / f"{model_name}-{ROWS_FILE}")
    engine = ENGINES[file_format]
    threads = "threads" if engine == "torch" else "intra_op_threads"
    label = "onnxruntime" if engine == "onnx" else f"torch {file_format}"
    return Scenario(
        f"{FAMILIES[model_name]} ({label})",
        engine,
        path,
        {INPUTS[model_name]: repeat_rows(rows)},
        {threads: str(THREADS)},
        family=FAMILIES[model_name],
    )


def _builder(model_name: str, file_format: str) -> Callable[[Path], Scenario]:
    def build(folder: Path) -> Scenario:
        return _scenario(model_name, file_format, folder)

    return build


SCENARIOS: dict[str, Callable[[Path], Scenario]] = {
    f"{ENGINES[file_format]}-{model_name}"
    + (f"-{file_format}" if ENGINES[file_format] == "torch" else ""): _builder(
        model_name, file_format
    )
    for model_name in FAMILIES
    for file_format in ("torchscript", "export", "onnx")
}


if __name__ == "__main__":
    print(save_model(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
