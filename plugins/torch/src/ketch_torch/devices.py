"""The devices PyTorch can run on here, and turning a device name into one of them."""

from __future__ import annotations

import re
from typing import Final

import torch

from ketch import DeviceUnavailableError

__all__ = ["available_devices", "check_dtype_supported", "resolve_device"]

_CUDA_NAME: Final = re.compile(r"cuda(?::(\d+))?")


def available_devices() -> tuple[str, ...]:
    """``cpu``, then ``cuda:0`` … ``cuda:N-1``, then ``mps``, as this machine has them."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        devices.append("mps")
    return tuple(devices)


def resolve_device(name: str) -> torch.device:
    """The device ``name`` means (``cuda`` is the current CUDA device).

    Raises DeviceUnavailableError for a name that is not ``cpu``, ``cuda``,
    ``cuda:N`` or ``mps``, or a device this machine does not have.
    """
    wanted = name.strip().lower()
    available = available_devices()
    if wanted == "cpu":
        return torch.device("cpu")
    if wanted == "mps":
        if "mps" not in available:
            raise DeviceUnavailableError(name, available, "PyTorch sees no MPS (Apple GPU) here")
        return torch.device("mps")
    match = _CUDA_NAME.fullmatch(wanted)
    if match is None:
        raise DeviceUnavailableError(
            name, available, "PyTorch models run on cpu, cuda, cuda:N or mps"
        )
    if not torch.cuda.is_available():
        raise DeviceUnavailableError(name, available, "PyTorch sees no CUDA device here")
    index = torch.cuda.current_device() if match.group(1) is None else int(match.group(1))
    if f"cuda:{index}" not in available:
        raise DeviceUnavailableError(
            name, available, f"this machine has {torch.cuda.device_count()} CUDA device(s)"
        )
    return torch.device("cuda", index)


def check_dtype_supported(
    name: str, device: torch.device, dtype: torch.dtype, available: tuple[str, ...]
) -> None:
    """DeviceUnavailableError unless ``device`` can multiply matrices of ``dtype``."""
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise DeviceUnavailableError(name, available, f"{device} does not support bfloat16")
    try:
        probe = torch.ones((2, 2), dtype=dtype, device=device)
        (probe @ probe).sum().item()
    except (RuntimeError, TypeError) as error:
        raise DeviceUnavailableError(
            name, available, f"{device} cannot compute in {dtype}: {error}"
        ) from error
