"""Moving rows between numpy on the host and PyTorch tensors on the model's device.

The wire datatypes never change with the device or the compute dtype: floating
inputs are cast to the compute dtype on the device, floating outputs are cast
back to the declared datatype on the host. ``bfloat16``, which has no numpy or
Open Inference Protocol datatype, is served as FP32.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import torch

from ketch import ModelLoadError, TensorSpec, numpy_dtype

__all__ = [
    "COMPUTE_DTYPES",
    "datatype_of_torch",
    "from_host",
    "to_host",
    "torch_dtype_of",
]

_DATATYPE_BY_TORCH: Final[dict[torch.dtype, str]] = {
    torch.bool: "BOOL",
    torch.uint8: "UINT8",
    torch.int8: "INT8",
    torch.int16: "INT16",
    torch.int32: "INT32",
    torch.int64: "INT64",
    torch.float16: "FP16",
    torch.bfloat16: "FP32",
    torch.float32: "FP32",
    torch.float64: "FP64",
}
_TORCH_BY_DATATYPE: Final[dict[str, torch.dtype]] = {
    "BOOL": torch.bool,
    "UINT8": torch.uint8,
    "INT8": torch.int8,
    "INT16": torch.int16,
    "INT32": torch.int32,
    "INT64": torch.int64,
    "FP16": torch.float16,
    "FP32": torch.float32,
    "FP64": torch.float64,
}
COMPUTE_DTYPES: Final[dict[str, torch.dtype]] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def datatype_of_torch(dtype: torch.dtype, what: str) -> str:
    """The Open Inference Protocol datatype that carries ``dtype``; ModelLoadError if none."""
    try:
        return _DATATYPE_BY_TORCH[dtype]
    except KeyError:
        raise ModelLoadError(f"{what} has dtype {dtype}, which Ketch cannot serve") from None


def torch_dtype_of(datatype: str) -> torch.dtype:
    """The PyTorch dtype that holds ``datatype``."""
    return _TORCH_BY_DATATYPE[datatype]


def from_host(array: np.ndarray, device: torch.device, compute: torch.dtype | None) -> torch.Tensor:
    """``array`` as a tensor on ``device``, floating values cast to ``compute`` when given.

    A writable, contiguous array is shared with the tensor (``torch.from_numpy``) until
    a cast or a move copies it. Arrays decoded from the wire are read-only views of the
    request's bytes, which PyTorch must not share (a model may write into its inputs):
    those are copied once, straight into the dtype and onto the device wanted.
    """
    floating = array.dtype.kind == "f"
    if not array.flags.writeable or not array.flags.c_contiguous:
        dtype = compute if compute is not None and floating else None
        return torch.tensor(array, dtype=dtype, device=device)
    tensor = torch.from_numpy(array)
    if compute is not None and floating:
        return tensor.to(device=device, dtype=compute)
    return tensor.to(device=device)


def to_host(tensor: torch.Tensor, spec: TensorSpec) -> np.ndarray:
    """``tensor`` as a numpy array of ``spec``'s datatype in host memory."""
    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    array = tensor.cpu().numpy()
    wanted = numpy_dtype(spec.datatype)
    return array if array.dtype == wanted else array.astype(wanted)
