"""A real Open Inference Protocol client (tritonclient's gRPC client) against ``ketch serve``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn_test_data import make_sentences

from ketch import WrapperClient, WrapperProcess, start_wrapper

grpcclient = pytest.importorskip("tritonclient.grpc")


@pytest.fixture(scope="module")
def digits_wrapper(digits_skops: Path) -> Iterator[WrapperProcess]:
    with start_wrapper(
        "sklearn", digits_skops, options={"method": "predict,predict_proba"}
    ) as process:
        yield process


@pytest.fixture(scope="module")
def text_wrapper(text_skops: Path) -> Iterator[WrapperProcess]:
    with start_wrapper("sklearn", text_skops) as process:
        yield process


def test_tritonclient_metadata(digits_wrapper: WrapperProcess) -> None:
    client = grpcclient.InferenceServerClient(digits_wrapper.address)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("digits")
    metadata = client.get_model_metadata("digits", as_json=True)
    assert metadata["name"] == "digits"
    assert metadata["platform"] == "scikit-learn"
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP64", "shape": ["-1", "64"]}]
    assert [o["name"] for o in metadata["outputs"]] == ["predict", "predict_proba"]
    server = client.get_server_metadata(as_json=True)
    assert server["name"] == "ketch"
    client.close()


def test_tritonclient_infer_matches_the_estimator(
    digits_wrapper: WrapperProcess, digits_classifier: Any, digits: Any
) -> None:
    rows = digits[2] / 16.0
    client = grpcclient.InferenceServerClient(digits_wrapper.address)
    infer_input = grpcclient.InferInput("input", list(rows.shape), "FP64")
    infer_input.set_data_from_numpy(rows)
    outputs = [
        grpcclient.InferRequestedOutput("predict"),
        grpcclient.InferRequestedOutput("predict_proba"),
    ]
    result = client.infer("digits", [infer_input], outputs=outputs)
    np.testing.assert_array_equal(result.as_numpy("predict"), digits_classifier.predict(rows))
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), digits_classifier.predict_proba(rows)
    )
    client.close()


def test_tritonclient_sees_clear_errors(digits_wrapper: WrapperProcess) -> None:
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(digits_wrapper.address)
    wrong = grpcclient.InferInput("input", [2, 64], "FP32")
    wrong.set_data_from_numpy(np.zeros((2, 64), np.float32))
    with pytest.raises(InferenceServerException, match="expected datatype FP64, got FP32"):
        client.infer("digits", [wrong])
    with pytest.raises(InferenceServerException, match="unknown model 'other'"):
        client.get_model_metadata("other")
    client.close()


def test_tritonclient_bytes_in_and_out(text_wrapper: WrapperProcess, text_classifier: Any) -> None:
    sentences, _ = make_sentences(10, seed=3)
    rows = np.array([s.encode() for s in sentences], dtype=object)
    client = grpcclient.InferenceServerClient(text_wrapper.address)
    infer_input = grpcclient.InferInput("input", [len(rows)], "BYTES")
    infer_input.set_data_from_numpy(rows)
    result = client.infer("topics", [infer_input])
    expected = [label.encode() for label in text_classifier.predict(sentences)]
    assert result.as_numpy("predict").tolist() == expected
    client.close()


def test_ketch_client_agrees_with_tritonclient(digits_wrapper: WrapperProcess, digits: Any) -> None:
    rows = digits[2][:50] / 16.0
    with WrapperClient(digits_wrapper.address, model="digits") as ours:
        mine = ours.infer({"input": rows})
    client = grpcclient.InferenceServerClient(digits_wrapper.address)
    infer_input = grpcclient.InferInput("input", list(rows.shape), "FP64")
    infer_input.set_data_from_numpy(rows)
    theirs = client.infer("digits", [infer_input])
    np.testing.assert_array_equal(mine["predict"], theirs.as_numpy("predict"))
    client.close()
