"""Placing a loaded graph on a device: a session on that device's execution provider."""

from __future__ import annotations

import dataclasses

from ketch import DeviceUnavailableError
from ketch_onnx.describe import probe_inputs
from ketch_onnx.devices import check_providers, providers_for
from ketch_onnx.engine import build_session, onnxruntime
from ketch_onnx.handle import OnnxModel
from ketch_onnx.inference import predict

__all__ = ["place"]


def place(model: OnnxModel, device_name: str) -> OnnxModel:
    """A handle whose session runs on ``device_name``; ``model`` is left as it was.

    The CPU reuses the session the load built. Another device gets a session of
    its own, which answers one probe batch before it is returned, so that a
    provider that cannot run the graph fails at start-up.
    """
    ort = onnxruntime()
    providers = providers_for(device_name, ort)
    if providers == ["CPUExecutionProvider"]:
        return dataclasses.replace(model, device="cpu", placed=True)
    device = device_name.strip().lower()
    device = "cuda:0" if device == "cuda" else device
    if model.placed and model.device == device:
        return model
    source: str | bytes = str(model.path)
    if not model.as_exported:
        from ketch_onnx.graph import prepare_graph

        source = prepare_graph(model.path, model.options.dtype).source
    session = build_session(model.path, source, model.options, providers)
    check_providers(device_name, session, providers, ort)
    placed = dataclasses.replace(model, session=session, device=device, placed=True)
    try:
        predict(placed, probe_inputs(model.signature.inputs, model.fixed_batch or 1))
    except Exception as error:
        raise DeviceUnavailableError(
            device_name, model.signature.capabilities.devices, f"the graph fails there: {error}"
        ) from error
    return placed
