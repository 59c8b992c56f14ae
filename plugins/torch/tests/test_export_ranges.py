"""``torch.export`` dimension ranges: published, enforced with the dimension's name, sampled."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.export import Dim
from torch_test_models import ImageScorer, SequencePair, save_export_with_dims

from ketch import (
    DimensionRange,
    Framework,
    InvalidInputError,
    ModelRuntime,
    ModelSpec,
    WrapperCallError,
    WrapperClient,
    WrapperProcess,
    select_framework,
    start_wrapper,
)
from ketch_torch.export_shapes import ExportBounds, sample_rows
from ketch_torch.handle import TorchModel

SIZE = DimensionRange(16, 512)


@pytest.fixture(scope="module")
def framework() -> Framework:
    return select_framework("torch")


@pytest.fixture(scope="module")
def scorer() -> ImageScorer:
    torch.manual_seed(3)
    return ImageScorer().eval()


@pytest.fixture(scope="module")
def images_export(tmp_path_factory: pytest.TempPathFactory, scorer: ImageScorer) -> Path:
    """The CNN exported for images of 16 to 512 pixels a side, at most 32 in a batch."""
    height, width = Dim("h", min=16, max=512), Dim("w", min=16, max=512)
    return save_export_with_dims(
        scorer,
        [torch.randn(2, 3, 32, 24)],
        tmp_path_factory.mktemp("ranges") / "images.pt2",
        ({0: Dim("batch", max=32), 2: height, 3: width},),
    )


@pytest.fixture(scope="module")
def pair_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two inputs that share ``Dim("seq")`` (2 to 32) and a third of length ``2 * seq``."""
    seq = Dim("seq", min=2, max=32)
    batch = Dim("batch")
    return save_export_with_dims(
        SequencePair(),
        [torch.randn(3, 8), torch.randn(3, 8), torch.randn(3, 16)],
        tmp_path_factory.mktemp("ranges") / "pair.pt2",
        ({0: batch, 1: seq}, {0: batch, 1: seq}, {0: batch, 1: 2 * seq}),
    )


def load(framework: Framework, path: Path) -> ModelRuntime:
    return ModelRuntime.load(framework, ModelSpec.from_path(path))


def test_the_ranges_are_in_the_signature(
    framework: Framework, images_export: Path, pair_export: Path
) -> None:
    images = load(framework, images_export)
    [image] = images.signature.inputs
    assert (image.name, image.shape) == ("image", (-1, 3, -1, -1))
    assert image.ranges == (None, None, SIZE, SIZE)
    assert images.signature.capabilities.max_batch == 32
    pair = load(framework, pair_export)
    first, second, doubled = pair.signature.inputs
    assert first.ranges == second.ranges
    [shared] = [bounds for bounds in first.ranges if bounds is not None]
    assert (shared.minimum, shared.maximum) == (2, 32)
    assert shared.name  # the symbol both share
    assert doubled.ranges == (None, DimensionRange(4, 64))
    assert pair.signature.capabilities.max_batch is None


def test_a_size_outside_the_range_is_the_callers_fault(
    framework: Framework, images_export: Path, scorer: ImageScorer
) -> None:
    runtime = load(framework, images_export)
    with pytest.raises(
        InvalidInputError, match=r"input 'image': dimension 2 is 8; the model takes 16 to 512"
    ):
        runtime.predict({"image": np.zeros((1, 3, 8, 32), np.float32)})
    with pytest.raises(InvalidInputError, match="dimension 3 is 513; the model takes 16 to 512"):
        runtime.predict({"image": np.zeros((1, 3, 16, 513), np.float32)})
    with pytest.raises(InvalidInputError, match="exceeds model 'images''s maximum batch of 32"):
        runtime.predict({"image": np.zeros((33, 3, 16, 16), np.float32)})
    images = np.random.default_rng(0).standard_normal((2, 3, 16, 512)).astype(np.float32)
    with torch.inference_mode():
        expected = scorer(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(
        runtime.predict({"image": images})["output"], expected, rtol=1e-4, atol=1e-5
    )


def test_related_dimensions_are_checked(framework: Framework, pair_export: Path) -> None:
    runtime = load(framework, pair_export)
    first = np.ones((2, 4), np.float32)
    with pytest.raises(InvalidInputError, match="input 'second': dimension 1 is 5, but it shares"):
        runtime.predict({"first": first, "second": np.ones((2, 5), np.float32), "doubled": first})
    with pytest.raises(InvalidInputError, match=r"shape constraints do not hold.*doubled"):
        runtime.predict({"first": first, "second": first, "doubled": np.ones((2, 7), np.float32)})
    outputs = runtime.predict(
        {"first": first, "second": first, "doubled": np.ones((2, 8), np.float32)}
    )
    assert outputs["output"].tolist() == [8.0, 8.0]


@pytest.mark.parametrize("rows", [1, 3, 40])
def test_example_inputs_fall_inside_the_ranges(
    framework: Framework, images_export: Path, pair_export: Path, rows: int
) -> None:
    for path in (images_export, pair_export):
        runtime = load(framework, path)
        examples = framework.example_inputs(runtime.model, rows)
        assert examples is not None
        assert set(examples) == {spec.name for spec in runtime.signature.inputs}
        for array in examples.values():
            assert len(array) == rows
            assert len({row.tobytes() for row in array}) == rows  # no two rows alike
        if runtime.signature.capabilities.max_batch is None or rows <= 32:
            assert len(runtime.predict(examples)["output"]) == rows


def test_random_rows_follow_the_relations_between_dimensions(
    framework: Framework, pair_export: Path
) -> None:
    runtime = load(framework, pair_export)
    assert isinstance(runtime.model, TorchModel)
    bounds = runtime.model.program.bounds
    assert isinstance(bounds, ExportBounds)
    rows = sample_rows(runtime.signature.inputs, bounds, None, 4)
    assert rows["first"].shape == rows["second"].shape == (4, 8)
    assert rows["doubled"].shape == (4, 16)
    assert len(runtime.predict(rows)["output"]) == 4


def test_a_smallest_batch_is_padded(framework: Framework, tmp_path: Path) -> None:
    module = torch.nn.Linear(4, 2).eval()
    path = save_export_with_dims(
        module, [torch.randn(4, 4)], tmp_path / "linear.pt2", ({0: Dim("batch", min=3)},)
    )
    runtime = load(framework, path)
    row = np.arange(4, dtype=np.float32).reshape(1, 4)
    with torch.inference_mode():
        expected = module(torch.from_numpy(row)).numpy()
    np.testing.assert_allclose(runtime.predict({"input": row})["output"], expected, rtol=1e-6)


def test_other_formats_offer_no_examples(
    framework: Framework, classifier_paths: dict[str, Path]
) -> None:
    runtime = load(framework, classifier_paths["torchscript"])
    assert framework.example_inputs(runtime.model, 3) is None


@pytest.fixture(scope="module")
def images_wrapper(images_export: Path) -> Iterator[WrapperProcess]:
    with start_wrapper("torch", images_export, options={"threads": "1"}) as process:
        yield process


def test_over_grpc_the_metadata_publishes_the_ranges(images_wrapper: WrapperProcess) -> None:
    with WrapperClient(images_wrapper.address, model="images") as client:
        [image] = client.model_metadata().inputs
        assert image.ranges == (None, None, SIZE, SIZE)
        assert client.capabilities().max_batch == 32


def test_over_grpc_a_size_outside_the_range_is_invalid_argument(
    images_wrapper: WrapperProcess,
) -> None:
    with WrapperClient(images_wrapper.address, model="images") as client:
        with pytest.raises(WrapperCallError) as caught:
            client.infer({"image": np.zeros((1, 3, 8, 8), np.float32)})
        assert caught.value.code == "INVALID_ARGUMENT"
        assert "dimension 2 is 8; the model takes 16 to 512" in caught.value.message
        outputs = client.infer({"image": np.zeros((1, 3, 16, 16), np.float32)})
        assert outputs["output"].shape == (1, 2)
