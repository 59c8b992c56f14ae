"""Device names: Ketch's (``cpu``, ``gpu``, ``gpu:N``, ``cuda:N``) and TensorFlow's."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from ketch import DeviceUnavailableError
from ketch_tensorflow.importing import tensorflow

__all__ = ["CPU", "Device", "available_devices", "resolve_device"]

_DEVICE_NAME: Final = re.compile(r"^(cpu|gpu|cuda)(?::(\d+))?$")
KNOWN_FORMS: Final = "cpu, gpu, gpu:N, cuda or cuda:N"


@dataclass(frozen=True, slots=True)
class Device:
    """A device the model runs under: Ketch's name for it and TensorFlow's."""

    name: str
    tf_name: str

    @property
    def is_gpu(self) -> bool:
        """Whether this is a GPU."""
        return self.name != "cpu"


CPU: Final = Device("cpu", "/device:CPU:0")


def _gpu_indices() -> list[int]:
    tf = tensorflow()
    return sorted(
        int(device.name.rsplit(":", 1)[1]) for device in tf.config.list_logical_devices("GPU")
    )


def available_devices() -> tuple[str, ...]:
    """The devices this machine's TensorFlow can run a model on: ``cpu``, then ``gpu:N``."""
    return ("cpu", *(f"gpu:{index}" for index in _gpu_indices()))


def _missing_gpu_reason(index: int) -> str:
    tf = tensorflow()
    count = len(_gpu_indices())
    if count:
        return f"TensorFlow sees {count} GPU{'s' if count > 1 else ''}, and none is number {index}"
    if not tf.test.is_built_with_cuda():
        return (
            "TensorFlow sees no GPU: this TensorFlow build has no GPU support "
            "(install ketch-tensorflow[gpu] for one that has)"
        )
    return "TensorFlow sees no GPU on this machine"


def resolve_device(device: str) -> Device:
    """The device that ``device`` names; DeviceUnavailableError naming those that exist."""
    match = _DEVICE_NAME.match(device.strip().lower())
    if match is None:
        raise DeviceUnavailableError(
            device, available_devices(), f"TensorFlow runs models on {KNOWN_FORMS}"
        )
    kind, number = match.groups()
    if kind == "cpu":
        if number not in (None, "0"):
            raise DeviceUnavailableError(
                device, available_devices(), "TensorFlow uses all CPU cores as one device, cpu"
            )
        return CPU
    index = int(number or 0)
    if index not in _gpu_indices():
        raise DeviceUnavailableError(device, available_devices(), _missing_gpu_reason(index))
    return Device(f"gpu:{index}", f"/device:GPU:{index}")
