"""``ketch serve torch`` over gRPC: named inputs of several datatypes, dtypes, devices at start."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_test_models import DigitsClassifier, MaskedScorer

from ketch import WrapperClient, WrapperProcess, WrapperStartError, start_wrapper
from ketch_torch.devices import available_devices

Digits = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def masked_wrapper(masked_export: Path) -> Iterator[WrapperProcess]:
    with start_wrapper("torch", masked_export, options={"threads": "1"}) as process:
        yield process


def test_two_inputs_over_grpc(
    masked_wrapper: WrapperProcess,
    masked_scorer: MaskedScorer,
    masked_examples: dict[str, np.ndarray],
) -> None:
    with WrapperClient(masked_wrapper.address, model="masked") as client:
        metadata = client.model_metadata()
        assert metadata.platform == "pytorch"
        assert [(s.name, s.datatype) for s in metadata.inputs] == [
            ("pixels", "FP32"),
            ("mask", "BOOL"),
        ]
        outputs = client.infer(masked_examples)
    with torch.inference_mode():
        scores, kept = masked_scorer(
            torch.from_numpy(masked_examples["pixels"]), torch.from_numpy(masked_examples["mask"])
        )
    np.testing.assert_allclose(outputs["output_0"], scores.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(outputs["output_1"], kept.numpy())


def test_bfloat16_over_grpc_keeps_the_wire_datatypes(
    classifier_paths: dict[str, Path], classifier: DigitsClassifier, digits: Digits
) -> None:
    rows = digits[2][:32]
    with (
        start_wrapper(
            "torch", classifier_paths["export"], options={"dtype": "bfloat16"}
        ) as process,
        WrapperClient(process.address, model="digits") as client,
    ):
        outputs = client.infer({"pixels": rows})
    with torch.inference_mode():
        expected = classifier(torch.from_numpy(rows))["probabilities"].numpy()
    assert outputs["probabilities"].dtype == np.float32
    np.testing.assert_allclose(outputs["probabilities"], expected, rtol=5e-2, atol=1e-2)


def test_an_absent_device_stops_the_wrapper_with_the_devices_there_are(
    classifier_paths: dict[str, Path],
) -> None:
    device = f"cuda:{torch.cuda.device_count() + 7}"
    listed = ", ".join(available_devices())
    with pytest.raises(
        WrapperStartError, match=rf"'{device}' is not available: .*\(available: {listed}\)"
    ):
        start_wrapper("torch", classifier_paths["export"], device=device, echo_stderr=False)
