"""A loaded TensorFlow model on its device, its signature, and batch prediction."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from ketch import (
    Capabilities,
    InvalidInputError,
    Signature,
    TensorSpec,
    Tolerance,
    numpy_dtype,
    validate_inputs,
)
from ketch_tensorflow.devices import Device, available_devices
from ketch_tensorflow.importing import tensorflow
from ketch_tensorflow.loading import ServingFunction, read_serving_function
from ketch_tensorflow.options import TensorFlowOptions

__all__ = ["TensorFlowModel", "load_model", "predict", "tolerance_for"]

CPU_TOLERANCE: Final = Tolerance(rtol=1e-4, atol=1e-6)
GPU_TOLERANCE: Final = Tolerance(rtol=1e-3, atol=1e-5)
HALF_TOLERANCE: Final = Tolerance(rtol=1e-2, atol=1e-3)


@dataclass(frozen=True, slots=True)
class TensorFlowModel:
    """The plugin's handle: a serving function loaded on one device, and where it came from."""

    path: Path
    options: TensorFlowOptions
    device: Device
    function: ServingFunction
    signature: Signature
    load_seconds: float


def tolerance_for(device: Device, outputs: tuple[TensorSpec, ...]) -> Tolerance:
    """How far two computations of one row may differ: a batch's kernels are not a row's.

    oneDNN on the CPU and cuBLAS on a GPU pick kernels by batch size, so sums run
    in other orders; half-precision outputs keep fewer digits.
    """
    if any(spec.datatype == "FP16" for spec in outputs):
        return HALF_TOLERANCE
    return GPU_TOLERANCE if device.is_gpu else CPU_TOLERANCE


def load_model(path: Path, options: TensorFlowOptions, device: Device) -> TensorFlowModel | None:
    """The model at ``path`` on ``device``, with its signature; None when it is not ours."""
    started = time.perf_counter()
    function = read_serving_function(path, options, device)
    if function is None:
        return None
    signature = Signature(
        inputs=function.inputs,
        outputs=function.outputs,
        capabilities=Capabilities(
            devices=available_devices(),
            observe=False,
            tolerance=tolerance_for(device, function.outputs),
        ),
        platform=function.platform,
    )
    return TensorFlowModel(
        path, options, device, function, signature, time.perf_counter() - started
    )


def _empty(spec: TensorSpec) -> np.ndarray:
    row_shape = tuple(max(size, 0) for size in spec.row_shape)
    return np.empty((0, *row_shape), dtype=numpy_dtype(spec.datatype))


def _tensor(tf: Any, spec: TensorSpec, array: np.ndarray) -> Any:
    if spec.datatype == "BYTES":
        return tf.constant(array, dtype=tf.string)
    return tf.constant(array)


def _op_message(message: str) -> str:
    """The failing op's own words, without the graph-execution preamble and node names."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    said = [line for line in lines if not line.startswith(("[[", "[Op:"))]
    return said[-1] if said else message


def predict(model: TensorFlowModel, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One array per output of the model's signature, one row per input row."""
    rows = validate_inputs(model.signature, inputs)
    if rows == 0:
        return {spec.name: _empty(spec) for spec in model.signature.outputs}
    tf = tensorflow()
    with tf.device(model.device.tf_name):
        tensors = {
            spec.name: _tensor(tf, spec, inputs[spec.name]) for spec in model.signature.inputs
        }
        try:
            outputs = model.function.call(tensors)
        except tf.errors.InvalidArgumentError as error:
            raise InvalidInputError(
                f"TensorFlow rejected the input: {_op_message(error.message)}"
            ) from None
    return {spec.name: outputs[spec.name].numpy() for spec in model.signature.outputs}
