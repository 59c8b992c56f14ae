"""The zoo served by ``ketch serve``: signatures from the graphs, outputs equal to PyTorch's."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
from onnx_zoo import ARCHITECTURES, WORDS, ZOO, reference

from ketch import Framework, ModelRuntime, ModelSpec, WrapperClient, select_framework, start_wrapper

SIGNATURES = {
    "mlp": ([("pixels", "FP32", (-1, 64))], [("probabilities", "FP32", (-1, 10))]),
    "cnn": ([("image", "FP32", (-1, 1, 8, 8))], [("scores", "FP32", (-1, 10))]),
    "lstm-gru": ([("steps", "FP32", (-1, -1, 8))], [("state", "FP32", (-1, 6))]),
    "transformer": ([("tokens", "FP32", (-1, 6, 16))], [("scores", "FP32", (-1, 3))]),
    "two-in-two-out": (
        [("pixels", "FP32", (-1, 64)), ("mask", "BOOL", (-1, 64))],
        [("scores", "FP32", (-1, 3)), ("kept", "INT64", (-1,))],
    ),
    "dynamic-sequence": ([("ids", "INT64", (-1, -1))], [("scores", "FP32", (-1, 4))]),
}
"""What each graph declares, as the TorchScript exporter writes it."""
DYNAMO_DIFFERENCES = {
    "lstm-gru": [("steps", "FP32", (-1, 5, 8))],
    "transformer": [("tokens", "FP32", (-1, -1, 16))],
}
"""Where the dynamo exporter keeps other dimensions dynamic (see ``Architecture.notes``)."""


@pytest.fixture(scope="module")
def framework() -> Framework:
    return select_framework("onnx")


def _described(runtime: ModelRuntime) -> tuple[list[tuple[str, str, tuple[int, ...]]], ...]:
    signature = runtime.signature
    return tuple(
        [(spec.name, spec.datatype, spec.shape) for spec in specs]
        for specs in (signature.inputs, signature.outputs)
    )


@pytest.mark.parametrize(("name", "exporter"), ZOO, ids=[f"{n}-{e}" for n, e in ZOO])
def test_the_signature_comes_from_the_graph(
    framework: Framework, zoo: dict[tuple[str, str], Path], name: str, exporter: str
) -> None:
    runtime = ModelRuntime.load(framework, ModelSpec.from_path(zoo[(name, exporter)]))
    inputs, outputs = SIGNATURES[name]
    if exporter == "dynamo":
        inputs = DYNAMO_DIFFERENCES.get(name, inputs)
    assert _described(runtime) == (inputs, outputs)
    assert runtime.signature.platform == "onnxruntime_onnx"


@pytest.fixture(scope="module")
def zoo_wrappers(zoo: dict[tuple[str, str], Path]) -> Iterator[dict[tuple[str, str], str]]:
    """One ``ketch serve onnx`` per zoo model, started a few at a time; their addresses."""
    with ExitStack() as stack, ThreadPoolExecutor(max_workers=4) as pool:
        processes = pool.map(lambda path: start_wrapper("onnx", path), zoo.values())
        started = dict(zip(zoo, processes, strict=True))
        for process in started.values():
            stack.enter_context(process)
        yield {key: process.address for key, process in started.items()}


@pytest.mark.parametrize(("name", "exporter"), ZOO, ids=[f"{n}-{e}" for n, e in ZOO])
def test_ketch_serve_answers_as_pytorch_does(
    framework: Framework,
    zoo: dict[tuple[str, str], Path],
    zoo_wrappers: dict[tuple[str, str], str],
    name: str,
    exporter: str,
) -> None:
    architecture = ARCHITECTURES[name]
    inputs = architecture.examples(np.random.default_rng(7), 33)
    if name == "lstm-gru" and exporter == "torchscript":
        inputs = {"steps": np.random.default_rng(8).standard_normal((33, 11, 8), np.float32)}
    tolerance = ModelRuntime.load(
        framework, ModelSpec.from_path(zoo[(name, exporter)])
    ).signature.capabilities.tolerance
    with WrapperClient(zoo_wrappers[(name, exporter)]) as client:
        outputs = client.infer(inputs)
    expected = reference(architecture.module(), inputs)
    assert list(outputs) == list(architecture.outputs)
    for output, want in zip(outputs.values(), expected, strict=True):
        assert output.dtype == want.dtype
        np.testing.assert_allclose(output, want, rtol=tolerance.rtol, atol=tolerance.atol)


def test_strings_in_and_out(words_onnx: Path) -> None:
    words = [*WORDS, "Éclair", "x\x00y"]
    rows = np.empty(len(words), dtype=object)
    rows[:] = [word.encode() for word in words]
    with (
        start_wrapper("onnx", words_onnx) as process,
        WrapperClient(process.address) as client,
    ):
        metadata = client.model_metadata()
        outputs = client.infer({"word": rows})
    assert [(s.name, s.datatype, s.shape) for s in metadata.inputs] == [("word", "BYTES", (-1,))]
    assert [(s.name, s.datatype) for s in metadata.outputs] == [
        ("lowered", "BYTES"),
        ("label", "INT64"),
    ]
    lowered = ["".join(c.lower() if c.isascii() else c for c in word) for word in words]
    known = {"apple": 0, "banana": 1, "cherry": 2}
    assert list(outputs["lowered"]) == [word.encode() for word in lowered]  # C locale: ASCII
    assert list(outputs["label"]) == [known.get(word, -1) for word in lowered]
