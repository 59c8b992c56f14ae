"""The exceptions Ketch raises and the ones plugins raise to speak the contract.

Each maps onto one gRPC status (and, in the gateway, one HTTP status), so that a
caller always learns whether the fault was theirs, the model's or the plugin's.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "CallCancelled",
    "ContractViolation",
    "DeviceUnavailableError",
    "InvalidInputError",
    "KetchError",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelNotReadyError",
    "PluginError",
    "WrapperCallError",
]


class KetchError(Exception):
    """The base of every error Ketch raises on purpose."""


class InvalidInputError(KetchError, ValueError):
    """The caller's input does not fit the model: wrong tensors, datatype, shape or bytes.

    Plugins raise it from ``ketch_batch_predict`` and ``ketch_observe`` for input they
    cannot use; the wrapper answers INVALID_ARGUMENT with the message.
    """


class CallCancelled(KetchError):
    """The caller gave up on the call: it cancelled it, or its deadline passed (``expired``).

    The runtime raises it instead of calling the plugin for a call that is already
    over; a plugin raises it when it stopped its framework because the call ended
    (see :func:`ketch.current_call`). The wrapper answers DEADLINE_EXCEEDED or
    CANCELLED, which the caller, having given up, no longer waits for.
    """

    def __init__(self, message: str, *, expired: bool) -> None:
        super().__init__(message)
        self.expired = expired


class ModelNotFoundError(KetchError, LookupError):
    """The request names a model or version that this process does not serve (NOT_FOUND)."""


class ModelNotReadyError(KetchError):
    """The model is still loading or is shutting down (UNAVAILABLE)."""


class DeviceUnavailableError(KetchError, ValueError):
    """A model was asked to move to a device that is unknown or not present.

    The message names the device asked for and the devices that exist, so the
    operator can fix the configuration without reading code.
    """

    def __init__(self, device: str, available: Sequence[str], reason: str = "") -> None:
        self.device = device
        self.available = tuple(available)
        listed = ", ".join(self.available) if self.available else "none"
        detail = f": {reason}" if reason else ""
        super().__init__(f"device {device!r} is not available{detail} (available: {listed})")


class ModelLoadError(KetchError):
    """A model file could not be loaded, or no plugin recognised it."""


class PluginError(KetchError):
    """A plugin is missing, disabled, or breaks the hook spec (a misspelt hook, say)."""


class ContractViolation(KetchError):
    """A plugin returned something the contract forbids (a lost row, an undeclared dtype).

    It is the plugin's fault, not the caller's: the wrapper answers INTERNAL.
    """


class WrapperCallError(KetchError):
    """A call to a wrapper process failed; ``code`` is the gRPC status name."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")
