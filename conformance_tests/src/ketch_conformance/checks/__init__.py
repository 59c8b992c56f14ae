"""The checks: each states one rule of the contract and fails a wrapper that breaks it.

Each module here holds the checks of one subject and lists them in its
``RULES``; :data:`CHECKS` lists every module's, in the order the suite runs them.
Nothing registers itself on import.
"""

from __future__ import annotations

from typing import Final

from ketch_conformance.checks import (
    answers,
    byte_inputs,
    calls,
    concurrency,
    devices,
    lifecycle,
    observe,
    resources,
    shapes,
)
from ketch_conformance.registry import IN_PROCESS, OVER_GRPC, Check, CheckContext

__all__ = ["CHECKS", "IN_PROCESS", "OVER_GRPC", "Check", "CheckContext", "checks_for"]


def _by_name(*modules_rules: tuple[Check, ...]) -> dict[str, Check]:
    checks: dict[str, Check] = {}
    for rules in modules_rules:
        for item in rules:
            if item.name in checks:
                raise ValueError(f"two checks are named {item.name!r}")
            checks[item.name] = item
    return checks


CHECKS: Final[dict[str, Check]] = _by_name(
    answers.RULES,
    calls.RULES,
    concurrency.RULES,
    lifecycle.RULES,
    resources.RULES,
    devices.RULES,
    observe.RULES,
    byte_inputs.RULES,
    shapes.RULES,
)
"""Every check by name, in the order the suite runs them."""


def checks_for(transport: str) -> list[Check]:
    """The checks that run over ``transport``, in the suite's order."""
    return [item for item in CHECKS.values() if transport in item.transports]
