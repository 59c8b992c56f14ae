"""Placing a model on a device, in the compute dtype it was loaded with."""

from __future__ import annotations

import dataclasses

from ketch import DeviceUnavailableError
from ketch_torch.describe import probe_inputs
from ketch_torch.devices import available_devices, check_dtype_supported, resolve_device
from ketch_torch.handle import TorchModel
from ketch_torch.inference import predict
from ketch_torch.loading import module_for
from ketch_torch.tensors import COMPUTE_DTYPES

__all__ = ["place"]


def place(model: TorchModel, device_name: str) -> TorchModel:
    """A handle whose module lives on ``device_name``; the model it came from is left as it was.

    The placed model answers one probe batch before it is returned, so that an
    operator the device cannot run in the compute dtype fails at start-up.
    """
    device = resolve_device(device_name)
    available = available_devices()
    compute = COMPUTE_DTYPES[model.compute_dtype] if model.compute_dtype else None
    if compute is not None:
        check_dtype_supported(device_name, device, compute, available)
    if model.placed and str(device) == model.device:
        return model
    module = module_for(model.program, model.path, device, compute)
    placed = dataclasses.replace(model, module=module, device=str(device), placed=True)
    if module is model.program.module:
        return placed  # the CPU, as saved: the load's probe already ran it
    rows = model.fixed_batch or 1
    probe = probe_inputs(model.signature.inputs, None, rows)
    try:
        predict(placed, probe)
    except Exception as error:
        what = f"in {model.compute_dtype}" if model.compute_dtype else "as saved"
        raise DeviceUnavailableError(
            device_name, available, f"the model does not run on {device} {what}: {error}"
        ) from error
    return placed
