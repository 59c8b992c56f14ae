from . import grpc_service_pb2 as _grpc_service_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ObserveRequest(_message.Message):
    __slots__ = ("model_name", "model_version", "inputs", "raw_input_contents", "labels", "raw_labels")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    RAW_INPUT_CONTENTS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    RAW_LABELS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    inputs: _containers.RepeatedCompositeFieldContainer[_grpc_service_pb2.ModelInferRequest.InferInputTensor]
    raw_input_contents: _containers.RepeatedScalarFieldContainer[bytes]
    labels: _grpc_service_pb2.ModelInferRequest.InferInputTensor
    raw_labels: bytes
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[_grpc_service_pb2.ModelInferRequest.InferInputTensor, _Mapping]]] = ..., raw_input_contents: _Optional[_Iterable[bytes]] = ..., labels: _Optional[_Union[_grpc_service_pb2.ModelInferRequest.InferInputTensor, _Mapping]] = ..., raw_labels: _Optional[bytes] = ...) -> None: ...

class ObserveResponse(_message.Message):
    __slots__ = ("changed", "rows")
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    changed: bool
    rows: int
    def __init__(self, changed: _Optional[bool] = ..., rows: _Optional[int] = ...) -> None: ...

class CapabilitiesRequest(_message.Message):
    __slots__ = ("model_name", "model_version")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...

class CapabilitiesResponse(_message.Message):
    __slots__ = ("devices", "observe", "max_batch", "rtol", "atol", "persists_observations", "labels")
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    OBSERVE_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    RTOL_FIELD_NUMBER: _ClassVar[int]
    ATOL_FIELD_NUMBER: _ClassVar[int]
    PERSISTS_OBSERVATIONS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedScalarFieldContainer[str]
    observe: bool
    max_batch: int
    rtol: float
    atol: float
    persists_observations: bool
    labels: LabelSpec
    def __init__(self, devices: _Optional[_Iterable[str]] = ..., observe: _Optional[bool] = ..., max_batch: _Optional[int] = ..., rtol: _Optional[float] = ..., atol: _Optional[float] = ..., persists_observations: _Optional[bool] = ..., labels: _Optional[_Union[LabelSpec, _Mapping]] = ...) -> None: ...

class LabelSpec(_message.Message):
    __slots__ = ("kind", "classes")
    KIND_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    kind: str
    classes: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, kind: _Optional[str] = ..., classes: _Optional[_Iterable[int]] = ...) -> None: ...
