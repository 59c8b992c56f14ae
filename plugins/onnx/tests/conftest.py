from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx_zoo import (
    ARCHITECTURES,
    ZOO,
    bfloat16_graph,
    caffe2_era_graph,
    export,
    export_module,
    string_graph,
)


@pytest.fixture(scope="session")
def graphs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-graphs")


@pytest.fixture(scope="session")
def zoo(graphs_dir: Path) -> dict[tuple[str, str], Path]:
    """Every zoo architecture exported with every exporter that runs here, once per session."""
    return {
        (name, exporter): export(
            ARCHITECTURES[name], graphs_dir / f"{name}-{exporter}.onnx", exporter == "dynamo"
        )
        for name, exporter in ZOO
    }


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def words_onnx(graphs_dir: Path) -> Path:
    return _save(string_graph(), graphs_dir / "words.onnx")


@pytest.fixture(scope="session")
def bfloat16_onnx(graphs_dir: Path) -> Path:
    return _save(bfloat16_graph(), graphs_dir / "bfloat16.onnx")


@pytest.fixture(scope="session")
def caffe2_era(graphs_dir: Path) -> tuple[Path, dict[str, np.ndarray]]:
    model, weights = caffe2_era_graph(np.random.default_rng(3))
    return _save(model, graphs_dir / "caffe2-era.onnx"), weights


@pytest.fixture(scope="session")
def fixed_mlp(graphs_dir: Path) -> Path:
    """The zoo's MLP exported for batches of exactly 4 rows (no dynamic axes)."""
    names = (["pixels"], ["probabilities"])
    module = ARCHITECTURES["mlp"].module()
    return export_module(module, (torch.zeros(4, 64),), graphs_dir / "mlp-fixed4.onnx", names)
