"""``ketch serve tensorflow`` as a real process: start-up, several datatypes over gRPC, errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tensorflow_test_models import as_bytes_rows, order_rows

from ketch import WrapperProcess, start_wrapper
from ketch_tensorflow.importing import is_startup_noise

grpcclient = pytest.importorskip("tritonclient.grpc")

DATATYPES = {"prices": "FP64", "quantity": "INT32", "member": "BOOL", "coupon": "BYTES"}


@pytest.fixture(scope="module")
def order_wrapper(order_savedmodel: Path) -> Iterator[WrapperProcess]:
    with start_wrapper("tensorflow", order_savedmodel, echo_stderr=False) as process:
        yield process


def test_startup_time_is_logged_once_and_startup_noise_is_quiet(
    order_wrapper: WrapperProcess,
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the log line may trail the ready line on stdout
        log = list(order_wrapper.stderr_tail)
        startup = [line for line in log if "tensorflow wrapper start-up:" in line]
        if startup:
            break
        time.sleep(0.05)
    assert len(startup) == 1, log
    assert "from process start to ready (importing TensorFlow" in startup[0]
    assert "loading the model" in startup[0]
    assert not [line for line in log if is_startup_noise(line)], log


def test_tritonclient_sends_several_inputs_of_several_datatypes(
    order_wrapper: WrapperProcess,
) -> None:
    client = grpcclient.InferenceServerClient(order_wrapper.address)
    metadata = client.get_model_metadata("order", as_json=True)
    assert metadata["platform"] == "tensorflow-savedmodel"
    assert {item["name"]: item["datatype"] for item in metadata["inputs"]} == DATATYPES
    rows = order_rows(5, seed=4)
    tensors = []
    for name, datatype in DATATYPES.items():
        tensor = grpcclient.InferInput(name, list(rows[name].shape), datatype)
        tensor.set_data_from_numpy(rows[name])
        tensors.append(tensor)
    result = client.infer("order", tensors)
    discount = np.array([float(coupon) for coupon in rows["coupon"]])
    total = rows["prices"].sum(axis=1) * rows["quantity"] * (1.0 - discount)
    np.testing.assert_allclose(result.as_numpy("total"), total)
    np.testing.assert_array_equal(result.as_numpy("items"), rows["quantity"] * 3)
    np.testing.assert_array_equal(result.as_numpy("free_shipping"), rows["member"] | (total > 100))
    assert result.as_numpy("receipt").tolist()[0].startswith(rows["coupon"][0] + b"x")
    client.close()


def test_input_tensorflow_rejects_is_invalid_argument(order_wrapper: WrapperProcess) -> None:
    from tritonclient.utils import InferenceServerException

    rows = order_rows(2, seed=5)
    rows["coupon"] = as_bytes_rows(["0.1", "half off"])
    client = grpcclient.InferenceServerClient(order_wrapper.address)
    tensors = []
    for name, datatype in DATATYPES.items():
        tensor = grpcclient.InferInput(name, list(rows[name].shape), datatype)
        tensor.set_data_from_numpy(rows[name])
        tensors.append(tensor)
    with pytest.raises(
        InferenceServerException,
        match=r"TensorFlow rejected the input: .*could not correctly convert string: half off",
    ):
        client.infer("order", tensors)
    assert order_wrapper.alive()
    client.close()
