"""Ketch's .proto keeps the Open Inference Protocol's wire format: field numbers and types
match tritonclient's copy of the protocol, message by message, but for the declared
extensions, which a client without them skips."""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import Descriptor

from ketch.proto import grpc_service_pb2 as ours

theirs = pytest.importorskip("tritonclient.grpc.service_pb2")

MESSAGES = [
    "ServerLiveRequest",
    "ServerLiveResponse",
    "ServerReadyRequest",
    "ServerReadyResponse",
    "ModelReadyRequest",
    "ModelReadyResponse",
    "ServerMetadataRequest",
    "ServerMetadataResponse",
    "ModelMetadataRequest",
    "ModelMetadataResponse",
    "ModelInferRequest",
    "ModelInferResponse",
    "InferParameter",
    "InferTensorContents",
]


# MLServer's extension of the protocol, at its field number: a tensor's metadata parameters
# (a map, whose entries protobuf describes as a nested message)
EXTENSIONS = {
    "ModelMetadataResponse": {
        "TensorMetadata.parameters": (4, 11, True),
        "TensorMetadata.ParametersEntry.key": (1, 9, False),
        "TensorMetadata.ParametersEntry.value": (2, 11, False),
    }
}


def fields(descriptor: Descriptor) -> dict[str, tuple[int, int, bool]]:
    found = {f.name: (f.number, f.type, f.is_repeated) for f in descriptor.fields}
    for nested in descriptor.nested_types:
        for name, value in fields(nested).items():
            found[f"{nested.name}.{name}"] = value
    return found


@pytest.mark.parametrize("name", MESSAGES)
def test_message_matches_tritonclient(name: str) -> None:
    mine = fields(getattr(ours, name).DESCRIPTOR)
    other = fields(getattr(theirs, name).DESCRIPTOR)
    extensions = EXTENSIONS.get(name, {})
    assert {key: mine.pop(key, None) for key in extensions} == extensions
    assert mine == other


def test_tritonclient_reads_metadata_that_carries_the_extension() -> None:
    response = ours.ModelMetadataResponse(name="m", versions=["1"], platform="p")
    tensor = response.inputs.add(name="image", datatype="FP32", shape=[-1, 3, -1, -1])
    tensor.parameters["dim_2_min"].int64_param = 16
    parsed = theirs.ModelMetadataResponse.FromString(response.SerializeToString())
    assert (parsed.inputs[0].name, list(parsed.inputs[0].shape)) == ("image", [-1, 3, -1, -1])


def test_service_methods_match() -> None:
    mine = ours.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    other = theirs.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert mine.full_name == other.full_name == "inference.GRPCInferenceService"
    for method in mine.methods:
        counterpart = other.methods_by_name[method.name]
        assert method.input_type.full_name == counterpart.input_type.full_name
        assert method.output_type.full_name == counterpart.output_type.full_name


def test_a_request_survives_the_round_trip_through_tritonclients_classes() -> None:
    request = ours.ModelInferRequest(model_name="m", model_version="2", id="q")
    tensor = request.inputs.add(name="x", datatype="FP32", shape=[2, 3])
    tensor.parameters["binary_data_size"].int64_param = 24
    request.raw_input_contents.append(b"\x00" * 24)
    parsed = theirs.ModelInferRequest.FromString(request.SerializeToString())
    assert parsed.inputs[0].shape == [2, 3]
    assert parsed.inputs[0].parameters["binary_data_size"].int64_param == 24
    assert ours.ModelInferRequest.FromString(parsed.SerializeToString()) == request
