"""The devices tier: on every declared device besides the CPU, the CPU's answers.

Applies when ``Capabilities.devices`` names a device other than ``cpu``. A declared
device that this machine lacks (placing there raises ``DeviceUnavailableError``) is
a skip, which strict mode fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np

from ketch import ContractViolation, DeviceUnavailableError, validate_outputs
from ketch_conformance.failures import CheckSkipped, ConformanceFailure, assert_outputs_equal
from ketch_conformance.faults import PluginFault
from ketch_conformance.registry import IN_PROCESS, CheckContext, check, in_process_subject
from ketch_conformance.subjects import InProcessSubject, error_name
from ketch_conformance.tiers import accelerators

__all__ = ["MAX_DEVICES", "RULES"]

MAX_DEVICES: Final = 2
"""How many declared accelerators are compared with the CPU (the first ones declared)."""


def _outputs(
    subject: InProcessSubject, inputs: Mapping[str, np.ndarray], device: str
) -> dict[str, np.ndarray]:
    rows = len(next(iter(inputs.values())))
    try:
        return validate_outputs(
            subject.signature, subject.predict(inputs), rows, plugin=f"on {device!r}, the plugin"
        )
    except ContractViolation as error:
        raise ConformanceFailure(str(error)) from error


@check(
    "devices_match_cpu",
    "on each declared device besides the CPU, the model answers as on the CPU, within the "
    "tolerance",
    tier="devices",
    transports=(IN_PROCESS,),
)
def check_devices_match_cpu(context: CheckContext) -> None:
    """The sample on fresh loads placed on the CPU and on each declared accelerator."""
    devices = accelerators(context.signature)[:MAX_DEVICES]
    subject = in_process_subject(context)
    on_cpu = subject.load_fresh(context.target, device="cpu")
    expected = _outputs(on_cpu, context.inputs, "cpu")
    missing = []
    for device in devices:
        try:
            placed = subject.load_fresh(context.target, device=device)
        except DeviceUnavailableError as error:
            missing.append(str(error))
            continue
        except PluginFault:
            raise
        except Exception as error:
            raise ConformanceFailure(
                f"loading and placing on the declared device {device!r} raised "
                f"{error_name(error)}: {error}"
            ) from error
        assert_outputs_equal(
            expected,
            _outputs(placed, context.inputs, device),
            context.tolerance,
            f"on {device!r} the answers differ from the CPU's",
        )
    if missing:
        raise CheckSkipped(
            "declared devices are not available on this machine: " + "; ".join(missing)
        )


RULES: Final = (check_devices_match_cpu,)
"""This module's checks."""
