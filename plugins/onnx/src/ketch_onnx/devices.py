"""The devices onnxruntime can run on here, and the execution providers for each."""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any, Final

from ketch import DeviceUnavailableError

__all__ = ["CPU_PROVIDER", "CUDA_PROVIDER", "available_devices", "check_providers", "providers_for"]

CPU_PROVIDER: Final = "CPUExecutionProvider"
CUDA_PROVIDER: Final = "CUDAExecutionProvider"
_CUDA_NAME: Final = re.compile(r"cuda(?::(\d+))?")


def _cuda_count(ort: ModuleType) -> int:
    """How many GPUs the CUDA provider can use (0 without the provider)."""
    if CUDA_PROVIDER not in ort.get_available_providers():
        return 0
    try:
        devices = ort.get_ep_devices()
    except AttributeError:  # before onnxruntime 1.22: the session tells when it starts
        return 1
    return sum(1 for device in devices if device.ep_name == CUDA_PROVIDER) or 1


def available_devices(ort: ModuleType) -> tuple[str, ...]:
    """``cpu``, then ``cuda:0`` … ``cuda:N-1`` when onnxruntime has its CUDA provider."""
    return ("cpu", *(f"cuda:{index}" for index in range(_cuda_count(ort))))


def _providers_here(ort: ModuleType) -> str:
    return ", ".join(ort.get_available_providers())


def providers_for(name: str, ort: ModuleType) -> list[Any]:
    """The execution providers that run a session on device ``name``, in order of preference.

    Raises DeviceUnavailableError for a device that is not ``cpu``, ``cuda`` or
    ``cuda:N``, or that onnxruntime cannot reach here; the message names the
    execution providers this onnxruntime has.
    """
    wanted = name.strip().lower()
    available = available_devices(ort)
    if wanted == "cpu":
        return [CPU_PROVIDER]
    match = _CUDA_NAME.fullmatch(wanted)
    if match is None:
        raise DeviceUnavailableError(
            name,
            available,
            f"ONNX graphs run on cpu, cuda or cuda:N (onnxruntime's execution providers "
            f"here: {_providers_here(ort)})",
        )
    if CUDA_PROVIDER not in ort.get_available_providers():
        raise DeviceUnavailableError(
            name,
            available,
            f"onnxruntime has no {CUDA_PROVIDER} here, only {_providers_here(ort)}; install "
            "onnxruntime-gpu (ketch-onnx[gpu]) on a machine with an NVIDIA GPU",
        )
    index = int(match.group(1) or 0)
    if f"cuda:{index}" not in available:
        raise DeviceUnavailableError(
            name, available, f"onnxruntime sees {len(available) - 1} CUDA device(s)"
        )
    return [(CUDA_PROVIDER, {"device_id": index}), CPU_PROVIDER]


def check_providers(name: str, session: Any, providers: list[Any], ort: ModuleType) -> None:
    """DeviceUnavailableError when the session fell back from the provider asked for."""
    first = providers[0] if isinstance(providers[0], str) else providers[0][0]
    running = session.get_providers()
    if running[:1] != [first]:
        raise DeviceUnavailableError(
            name,
            available_devices(ort),
            f"onnxruntime could not start {first} (the session runs on {', '.join(running)})",
        )
