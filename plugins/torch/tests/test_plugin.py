"""The PyTorch plugin in process: formats, signatures from every source, options and errors."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch_test_models import DigitsClassifier, MaskedScorer, save_export, save_torchscript

from ketch import Framework, ModelLoadError, ModelRuntime, ModelSpec, select_framework

Digits = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def framework() -> Framework:
    return select_framework("torch")


def load(framework: Framework, path: Path, **options: str) -> ModelRuntime:
    return ModelRuntime.load(framework, ModelSpec.from_path(path, options=options))


def reference(module: nn.Module, *arrays: np.ndarray) -> Any:
    with torch.inference_mode():
        return module(*(torch.from_numpy(array) for array in arrays))


@pytest.fixture(scope="module")
def bare_torchscript(
    tmp_path_factory: pytest.TempPathFactory, classifier: DigitsClassifier
) -> Path:
    """The classifier as TorchScript with no metadata file beside it."""
    return save_torchscript(classifier, tmp_path_factory.mktemp("bare") / "digits.pt")


@pytest.mark.parametrize("file_format", ["torchscript", "export", "onnx"])
def test_each_format_serves_the_classifier(
    framework: Framework,
    classifier_paths: dict[str, Path],
    classifier: DigitsClassifier,
    digits: Digits,
    file_format: str,
) -> None:
    runtime = load(framework, classifier_paths[file_format])
    signature = runtime.signature
    assert signature.platform == ("onnxruntime_onnx" if file_format == "onnx" else "pytorch")
    assert [(s.name, s.datatype, s.shape) for s in signature.inputs] == [
        ("pixels", "FP32", (-1, 64))
    ]
    assert [(s.name, s.datatype, s.shape) for s in signature.outputs] == [
        ("probabilities", "FP32", (-1, 10)),
        ("label", "INT64", (-1,)),
    ]
    assert signature.capabilities.devices[0] == "cpu"
    rows, labels = digits[2], digits[3]
    outputs = runtime.predict({"pixels": rows})
    expected = reference(classifier, rows)
    np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"], atol=1e-6)
    np.testing.assert_array_equal(outputs["label"], expected["label"])
    assert (outputs["label"] == labels).mean() > 0.9


def test_torchscript_without_shapes_asks_for_them(
    framework: Framework, bare_torchscript: Path
) -> None:
    with pytest.raises(
        ModelLoadError,
        match=r"does not record its input shapes \(its forward takes pixels\); declare them in "
        r"digits\.pt\.ketch\.json beside it, with the option inputs=",
    ):
        load(framework, bare_torchscript)


def test_inputs_and_outputs_options(framework: Framework, bare_torchscript: Path) -> None:
    runtime = load(framework, bare_torchscript, inputs="image:FP32:64", outputs="label")
    assert [(s.name, s.shape) for s in runtime.signature.inputs] == [("image", (-1, 64))]
    assert [(s.name, s.datatype) for s in runtime.signature.outputs] == [("label", "INT64")]
    outputs = runtime.predict({"image": np.zeros((3, 64), np.float32)})
    assert list(outputs) == ["label"]


def test_example_inputs_give_the_signature(
    framework: Framework, bare_torchscript: Path, digits: Digits, tmp_path: Path
) -> None:
    examples = tmp_path / "examples.npz"
    np.savez(examples, pixels=digits[2][:3])
    runtime = load(framework, bare_torchscript, examples=str(examples))
    assert [(s.name, s.datatype, s.shape) for s in runtime.signature.inputs] == [
        ("pixels", "FP32", (-1, 64))
    ]


def test_examples_that_do_not_fit_are_named(
    framework: Framework, classifier_paths: dict[str, Path], tmp_path: Path
) -> None:
    examples = tmp_path / "wrong.npz"
    np.savez(examples, pixels=np.zeros((2, 63), np.float32))
    with pytest.raises(
        ModelLoadError,
        match=r"wrong\.npz: the examples do not fit the inputs: input 'pixels': expected shape "
        r"\[-1, 64\], got \[2, 63\]",
    ):
        load(framework, classifier_paths["export"], examples=str(examples))


def test_renaming_the_inputs_of_an_archive_with_examples(
    framework: Framework, classifier_paths: dict[str, Path]
) -> None:
    runtime = load(framework, classifier_paths["export"], inputs="image:FP32:64")
    assert runtime.predict({"image": np.ones((2, 64), np.float32)})["label"].shape == (2,)


def test_the_option_wins_over_the_metadata_file(
    framework: Framework, classifier_paths: dict[str, Path]
) -> None:
    runtime = load(framework, classifier_paths["torchscript"], inputs="x:FP32:64")
    assert runtime.signature.inputs[0].name == "x"


def _write_metadata(folder: Path, model: Path, document: object) -> Path:
    copy = folder / model.name
    copy.write_bytes(model.read_bytes())
    (folder / f"{model.name}.ketch.json").write_text(
        document if isinstance(document, str) else json.dumps(document)
    )
    return copy


PIXELS = {"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "is not a readable JSON file"),
        ([PIXELS], "expected a JSON object with inputs and outputs"),
        ({"inputs": [PIXELS], "signature": 1}, "unknown key.*signature; known: inputs, outputs"),
        ({"inputs": [{"datatype": "FP32", "shape": [-1, 64]}]}, r"inputs\[0\] needs a name"),
        ({"inputs": [{"name": "pixels", "shape": [-1, 64]}]}, "input 'pixels' needs a datatype"),
        ({"inputs": [{**PIXELS, "datatype": "FLOAT"}]}, "datatype 'FLOAT' is not one of BOOL"),
        ({"inputs": [{**PIXELS, "shape": [64]}]}, "must start with the batch dimension -1"),
        ({"inputs": [{**PIXELS, "shape": "64"}]}, "shape must be a list of whole numbers"),
        ({"inputs": [PIXELS, PIXELS]}, "inputs names pixels twice"),
        (
            {"inputs": [PIXELS, {**PIXELS, "name": "mask"}]},
            r"the model takes 1 input\(s\) \(pixels\), but 2 are declared \(pixels, mask\)",
        ),
        (
            {"inputs": [PIXELS], "outputs": [{"name": "label", "datatype": "FP64"}]},
            "output 'label' is declared FP64 .-1.*but the model returns INT64",
        ),
        (
            {"inputs": [PIXELS], "outputs": [{"name": "scores"}]},
            "returns no output 'scores'; it returns 'probabilities', 'label'",
        ),
    ],
)
def test_bad_metadata_is_named(
    framework: Framework,
    bare_torchscript: Path,
    tmp_path: Path,
    document: object,
    message: str,
) -> None:
    model = _write_metadata(tmp_path, bare_torchscript, document)
    with pytest.raises(ModelLoadError, match=message):
        load(framework, model)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fromat": "onnx"}, "unknown option.*fromat.*known: format"),
        ({"format": "caffe"}, "format='caffe' is not one of auto, torchscript, export, onnx"),
        ({"dtype": "int8"}, "dtype='int8' is not one of auto, float32, float16, bfloat16"),
        ({"threads": "many"}, "threads='many' is not a whole number"),
        ({"threads": "0"}, "threads=0 must be at least 1"),
        ({"examples": "/no/such/file.npz"}, "examples='/no/such/file.npz': no such file"),
        ({"inputs": "pixels:FP32"}, "'pixels:FP32' is not NAME:DATATYPE:DIMS"),
        ({"inputs": "pixels:FP32:8by8"}, "dimensions '8by8' are not whole numbers joined by x"),
        ({"inputs": "pixels:TEXT:64"}, "datatype 'TEXT' is not one of"),
        ({"outputs": "a,a"}, "option outputs names a twice"),
    ],
)
def test_bad_options_are_named(
    framework: Framework, bare_torchscript: Path, options: dict[str, str], message: str
) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load(framework, bare_torchscript, **options)


def test_the_format_comes_from_the_contents_not_the_name(
    framework: Framework, classifier_paths: dict[str, Path], tmp_path: Path
) -> None:
    for file_format, path in classifier_paths.items():
        renamed = tmp_path / f"{file_format}.model"
        renamed.write_bytes(path.read_bytes())
        options = {"inputs": "pixels:FP32:64"} if file_format == "torchscript" else {}
        assert load(framework, renamed, **options).signature.outputs[1].name == "label"


def test_a_forced_format_that_does_not_fit(
    framework: Framework, classifier_paths: dict[str, Path]
) -> None:
    with pytest.raises(ModelLoadError, match=r"digits\.pt2 is not a readable TorchScript file"):
        load(framework, classifier_paths["export"], format="torchscript")
    with pytest.raises(ModelLoadError, match=r"digits\.onnx is not a readable torch\.export"):
        load(framework, classifier_paths["onnx"], format="export")


def test_a_torch_save_checkpoint_is_refused(framework: Framework, tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    torch.save(nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(
        ModelLoadError, match=r"was written by torch\.save: a pickle.*torch\.export"
    ):
        load(framework, path)


def test_files_of_other_kinds_are_not_recognised(framework: Framework, tmp_path: Path) -> None:
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as writer:
        writer.writestr("readme.txt", "not a model")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    for path in (archive, text):
        with pytest.raises(ModelLoadError, match="does not recognise the model"):
            load(framework, path)


def test_a_damaged_archive(
    framework: Framework, classifier_paths: dict[str, Path], tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged.pt2"
    with (
        zipfile.ZipFile(classifier_paths["export"]) as source,
        zipfile.ZipFile(damaged, "w") as target,
    ):
        for item in source.infolist():
            if not item.filename.endswith("model.json"):
                target.writestr(item, source.read(item))
    with pytest.raises(
        ModelLoadError, match=r"damaged\.pt2 is not a readable torch\.export archive"
    ):
        load(framework, damaged)


def test_two_named_inputs_of_two_datatypes(
    framework: Framework,
    masked_export: Path,
    masked_scorer: MaskedScorer,
    masked_examples: dict[str, np.ndarray],
) -> None:
    runtime = load(framework, masked_export)
    assert [(s.name, s.datatype, s.shape) for s in runtime.signature.inputs] == [
        ("pixels", "FP32", (-1, 64)),
        ("mask", "BOOL", (-1, 64)),
    ]
    assert [(s.name, s.datatype, s.shape) for s in runtime.signature.outputs] == [
        ("output_0", "FP32", (-1, 3)),
        ("output_1", "INT64", (-1,)),
    ]
    outputs = runtime.predict(masked_examples)
    scores, kept = reference(masked_scorer, masked_examples["pixels"], masked_examples["mask"])
    np.testing.assert_allclose(outputs["output_0"], scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(outputs["output_1"], kept)


def test_a_program_exported_for_one_batch_size_answers_any(
    framework: Framework, classifier: DigitsClassifier, digits: Digits, tmp_path: Path
) -> None:
    rows = digits[2][:11]
    path = save_export(
        classifier, [torch.from_numpy(rows[:4])], tmp_path / "fixed.pt2", dynamic_batch=False
    )
    runtime = load(framework, path)
    assert runtime.signature.inputs[0].shape == (-1, 64)
    expected = reference(classifier, rows)
    for count in (1, 4, 5, 11):
        outputs = runtime.predict({"pixels": rows[:count]})
        np.testing.assert_array_equal(outputs["label"], expected["label"][:count].numpy())
        np.testing.assert_allclose(
            outputs["probabilities"], expected["probabilities"][:count], atol=1e-6
        )


class _BatchTotal(nn.Module):
    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return rows.sum(dim=0, keepdim=True)


def test_a_model_that_merges_rows_is_refused(framework: Framework, tmp_path: Path) -> None:
    path = save_export(_BatchTotal(), [torch.zeros(3, 4)], tmp_path / "total.pt2")
    with pytest.raises(ModelLoadError, match="one output row per input row"):
        load(framework, path)


def test_an_empty_batch(framework: Framework, classifier_paths: dict[str, Path]) -> None:
    runtime = load(framework, classifier_paths["onnx"])
    outputs = runtime.predict({"pixels": np.zeros((0, 64), np.float32)})
    assert outputs["probabilities"].shape == (0, 10)
    assert outputs["label"].dtype == np.int64


def test_onnx_graphs_take_ketch_onnx_options(
    framework: Framework, classifier_paths: dict[str, Path], digits: Digits
) -> None:
    """``threads`` is onnxruntime's intra-op threads; ketch-onnx's own options pass through."""
    runtime = load(framework, classifier_paths["onnx"], threads="1", optimization="basic")
    settings = runtime.model.session.get_session_options()  # type: ignore[attr-defined]
    assert settings.intra_op_num_threads == 1
    assert str(settings.graph_optimization_level).endswith("ORT_ENABLE_BASIC")
    assert runtime.predict({"pixels": digits[2][:3]})["label"].shape == (3,)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"inputs": "x:FP32:64"}, r"option\(s\) inputs do not apply to .*digits\.onnx: an ONNX"),
        ({"dtype": "bfloat16"}, "onnxruntime converts graphs to float16 only"),
        ({"intra_op_threads": "0"}, "intra_op_threads=0 must be at least 1"),
        ({"fromat": "onnx"}, r"unknown option\(s\) fromat for an ONNX graph in the torch plugin"),
    ],
)
def test_options_that_do_not_fit_an_onnx_graph(
    framework: Framework, classifier_paths: dict[str, Path], options: dict[str, str], message: str
) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load(framework, classifier_paths["onnx"], **options)


class DoublesInPlace(nn.Module):
    """Writes into its input (``mul_``), as some models do: the caller's rows must not change."""

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return rows.mul_(2.0)


@pytest.mark.parametrize("dtype", ["auto", "float16"])
def test_read_only_rows_from_the_wire_are_copied_once_not_shared(
    framework: Framework, tmp_path: Path, dtype: str
) -> None:
    """Decoded requests are read-only views of the request's bytes; PyTorch gets a copy.

    Warnings are errors in the tests, so ``torch.from_numpy``'s warning about a read-only
    array would fail this test too.
    """
    path = save_torchscript(DoublesInPlace(), tmp_path / "doubles.pt")
    (tmp_path / "doubles.pt.ketch.json").write_text(
        json.dumps(
            {
                "inputs": [{"name": "rows", "datatype": "FP32", "shape": [-1, 3]}],
                "outputs": [{"name": "doubled", "datatype": "FP32", "shape": [-1, 3]}],
            }
        )
    )
    runtime = load(framework, path, dtype=dtype)
    wire = np.array([[1.0, -2.0, 0.5], [3.0, 4.0, -0.25]], np.float32).tobytes()
    rows = np.frombuffer(wire, dtype=np.float32).reshape(2, 3)
    assert not rows.flags.writeable
    doubled = runtime.predict({"rows": rows})["doubled"]
    np.testing.assert_array_equal(doubled, rows * 2)
    assert np.frombuffer(wire, dtype=np.float32).tolist() == [1.0, -2.0, 0.5, 3.0, 4.0, -0.25]
