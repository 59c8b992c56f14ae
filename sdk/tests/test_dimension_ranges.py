"""Bounded variable dimensions over gRPC: published in the metadata, enforced on every call."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from sdk_test_plugins import WINDOW_PLUGIN

from ketch import (
    DimensionRange,
    WrapperCallError,
    WrapperClient,
    WrapperProcess,
    start_wrapper,
)
from ketch.proto import grpc_service_pb2 as pb


@pytest.fixture(scope="module")
def window_wrapper(
    tmp_path_factory: pytest.TempPathFactory, test_plugins_env: dict[str, str]
) -> Iterator[WrapperProcess]:
    path = tmp_path_factory.mktemp("window") / "sum.window"
    path.write_text(json.dumps({"min": 2, "max": 8}))
    with start_wrapper(WINDOW_PLUGIN, path, env=test_plugins_env) as process:
        yield process


def test_the_ranges_are_in_the_metadata(window_wrapper: WrapperProcess) -> None:
    steps = DimensionRange(2, 8, name="steps")
    with WrapperClient(window_wrapper.address) as client:
        metadata = client.model_metadata()
    with grpc.insecure_channel(window_wrapper.address) as channel:
        call = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelMetadata",
            request_serializer=pb.ModelMetadataRequest.SerializeToString,
            response_deserializer=pb.ModelMetadataResponse.FromString,
        )
        response = call(pb.ModelMetadataRequest(name="sum"), timeout=10)
    assert [(spec.name, spec.shape, spec.ranges) for spec in metadata.inputs] == [
        ("series", (-1, -1), (None, steps)),
        ("weights", (-1, -1), (None, steps)),
    ]
    assert metadata.outputs[0].ranges == ()
    parameters = response.inputs[0].parameters
    assert parameters["dim_1_min"].int64_param == 2
    assert parameters["dim_1_max"].int64_param == 8
    assert parameters["dim_1_name"].string_param == "steps"


def test_tritonclient_reads_the_same_metadata(window_wrapper: WrapperProcess) -> None:
    grpcclient = pytest.importorskip("tritonclient.grpc")
    client = grpcclient.InferenceServerClient(window_wrapper.address)
    try:
        metadata = client.get_model_metadata("sum")
    finally:
        client.close()
    assert [(t.name, list(t.shape)) for t in metadata.inputs] == [
        ("series", [-1, -1]),
        ("weights", [-1, -1]),
    ]


@pytest.mark.parametrize(
    ("series", "weights", "message"),
    [
        (1, 1, "input 'series': dimension 1 ('steps') is 1; the model takes 2 to 8"),
        (9, 9, "input 'series': dimension 1 ('steps') is 9; the model takes 2 to 8"),
        (3, 4, "input 'weights': dimension 1 is 4, but it shares the size 'steps'"),
    ],
)
def test_sizes_outside_the_ranges_are_invalid_arguments(
    window_wrapper: WrapperProcess, series: int, weights: int, message: str
) -> None:
    with WrapperClient(window_wrapper.address) as client:
        with pytest.raises(WrapperCallError) as caught:
            client.infer(
                {
                    "series": np.ones((2, series), np.float32),
                    "weights": np.ones((2, weights), np.float32),
                }
            )
        assert caught.value.code == "INVALID_ARGUMENT"
        assert message in caught.value.message
        rows = {"series": np.ones((1, 8), np.float32), "weights": np.full((1, 8), 2, np.float32)}
        assert client.infer(rows)["total"].tolist() == [16.0]
