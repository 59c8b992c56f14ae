"""Accelerator memory in use, as the framework that holds it reports it.

Only a framework that the plugin already imported is asked (this module never
imports one): PyTorch for ``cuda[:N]`` and ``mps``, TensorFlow for ``gpu[:N]``
and ``cuda[:N]``. A CPU model, or a framework that reports nothing, gives no
readings. The Prometheus collector that reports these readings is
:class:`ketch.telemetry.wrapper_metrics.DeviceMemoryCollector`; this module imports
no prometheus_client, so that a wrapper without metrics never loads it.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Final

__all__ = ["device_memory"]

_ACCELERATOR: Final = re.compile(r"^(cuda|gpu)(?::(\d+))?$")


def _torch_readings(torch: Any, device: str) -> dict[str, int]:
    if device == "mps":
        return {
            "allocated": int(torch.mps.current_allocated_memory()),
            "reserved": int(torch.mps.driver_allocated_memory()),
        }
    match = _ACCELERATOR.match(device)
    if match is None or match.group(1) != "cuda" or not torch.cuda.is_available():
        return {}
    index = int(match.group(2) or 0)
    return {
        "allocated": int(torch.cuda.memory_allocated(index)),
        "reserved": int(torch.cuda.memory_reserved(index)),
        "peak": int(torch.cuda.max_memory_allocated(index)),
    }


def _tensorflow_readings(tensorflow: Any, device: str) -> dict[str, int]:
    match = _ACCELERATOR.match(device)
    if match is None or not tensorflow.config.list_logical_devices("GPU"):
        return {}
    info = tensorflow.config.experimental.get_memory_info(f"GPU:{int(match.group(2) or 0)}")
    return {"allocated": int(info["current"]), "peak": int(info["peak"])}


def device_memory(device: str) -> dict[str, int]:
    """Bytes of ``device``'s memory in use, by state (``allocated``, ``reserved``, ``peak``)."""
    if device == "cpu":
        return {}
    torch = sys.modules.get("torch")
    if torch is not None:
        readings = _torch_readings(torch, device)
        if readings:
            return readings
    tensorflow = sys.modules.get("tensorflow")
    if tensorflow is not None:
        return _tensorflow_readings(tensorflow, device)
    return {}
