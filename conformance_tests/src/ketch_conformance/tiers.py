"""Tiers: which checks apply to a wrapper, decided by the capabilities it declares.

The ``core`` tier applies to every wrapper and is never skipped. Each optional
tier applies when the signature declares its capability; a check of a tier that
does not apply is *not applicable* and is not run (strict mode accepts that).
A check that applies but cannot run here (no GPU on this machine, say) is
*skipped*, and strict mode fails it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ketch import VARIABLE, Signature

if TYPE_CHECKING:
    from ketch_conformance.registry import Check

__all__ = [
    "CORE",
    "NOT_APPLICABLE_PREFIX",
    "REQUIREMENTS",
    "TIERS",
    "Requirement",
    "accelerators",
    "not_applicable",
]

CORE: Final = "core"
NOT_APPLICABLE_PREFIX: Final = "not applicable: "


@dataclass(frozen=True)
class Requirement:
    """A capability a check may need: what the plugin declares, and how to tell."""

    declaration: str
    holds: Callable[[Signature], bool]


def accelerators(signature: Signature) -> tuple[str, ...]:
    """The declared devices other than the CPU, in declaration order."""
    return tuple(device for device in signature.capabilities.devices if device != "cpu")


def _bytes_inputs(signature: Signature) -> bool:
    return any(spec.datatype == "BYTES" for spec in signature.inputs)


def _variable_shapes(signature: Signature) -> bool:
    return any(VARIABLE in spec.row_shape for spec in signature.inputs)


REQUIREMENTS: Final[dict[str, Requirement]] = {
    CORE: Requirement("nothing: every wrapper", lambda signature: True),
    "devices": Requirement(
        "a device other than the CPU in Capabilities.devices",
        lambda signature: bool(accelerators(signature)),
    ),
    "observe": Requirement(
        "Capabilities.observe (online learning)", lambda signature: signature.capabilities.observe
    ),
    "bytes": Requirement("an input of datatype BYTES", _bytes_inputs),
    "variable_shapes": Requirement(
        "an input with a variable dimension (-1) besides the batch", _variable_shapes
    ),
    "max_batch": Requirement(
        "Capabilities.max_batch", lambda signature: signature.capabilities.max_batch is not None
    ),
    "persists_observations": Requirement(
        "Capabilities.persists_observations",
        lambda signature: signature.capabilities.persists_observations,
    ),
}
"""Every capability a tier or a check can need, by name."""

TIERS: Final = (CORE, "devices", "observe", "bytes", "variable_shapes", "max_batch")
"""The tiers, in the order reports list them; each is also the name of its requirement."""


def not_applicable(check: Check, signature: Signature) -> str | None:
    """Why ``check`` does not apply to a wrapper with ``signature``, or None when it does."""
    for name in (check.tier, *check.needs):
        requirement = REQUIREMENTS[name]
        if not requirement.holds(signature):
            return f"the wrapper does not declare {requirement.declaration}"
    return None
