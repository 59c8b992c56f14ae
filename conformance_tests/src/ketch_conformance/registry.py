"""What a check is, and the context every check works with.

A check is a function of a :class:`CheckContext` that returns quietly when the
rule holds and raises :class:`~ketch_conformance.ConformanceFailure`, saying what
is wrong, when it does not (or :class:`~ketch_conformance.CheckSkipped` when it
applies but cannot run here). Checks run in process (the hooks, called directly)
or over gRPC (a real ``ketch serve`` process), as each declares, and belong to a
tier (see :mod:`ketch_conformance.tiers`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np

from ketch import (
    ContractViolation,
    InvalidInputError,
    Signature,
    Tolerance,
    WrapperCallError,
    validate_outputs,
)
from ketch_conformance.failures import ConformanceFailure
from ketch_conformance.faults import PluginFault
from ketch_conformance.samples import take_rows
from ketch_conformance.subjects import GrpcSubject, InProcessSubject, Subject, error_name
from ketch_conformance.target import ConformanceTarget
from ketch_conformance.tiers import CORE, TIERS

__all__ = [
    "IN_PROCESS",
    "OVER_GRPC",
    "TRANSPORTS",
    "Check",
    "CheckContext",
    "Refused",
    "answer_or_refusal",
    "check",
    "concatenate",
    "grpc_subject",
    "in_process_subject",
    "singles",
]

IN_PROCESS: Final = "in_process"
OVER_GRPC: Final = "grpc"
TRANSPORTS: Final = (IN_PROCESS, OVER_GRPC)


@dataclass(frozen=True)
class CheckContext:
    """What a check works with: the wrapper, rows to try, and the declared tolerance.

    ``reference`` is the target loaded in process, which gRPC checks compare the
    wire against; when None they load it themselves.
    """

    subject: Subject
    inputs: Mapping[str, np.ndarray]
    tolerance: Tolerance
    target: ConformanceTarget
    reference: InProcessSubject | None = None

    @property
    def rows(self) -> int:
        """How many sample rows there are."""
        return len(next(iter(self.inputs.values())))

    @property
    def signature(self) -> Signature:
        """The signature the wrapper declares."""
        return self.subject.signature

    @property
    def max_batch(self) -> int | None:
        """The most rows one call may carry, as the wrapper declares (None: no bound)."""
        return self.signature.capabilities.max_batch

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The subject's outputs, checked to keep the signature's promises."""
        outputs = self.subject.predict(inputs)
        rows = len(next(iter(inputs.values())))
        try:
            return validate_outputs(self.signature, outputs, rows, plugin="the wrapper")
        except ContractViolation as error:
            raise ConformanceFailure(f"{self.subject.label}: {error}") from error


CheckFunction = Callable[[CheckContext], None]


@dataclass(frozen=True)
class Check:
    """One rule: its name, tier, where it runs, what it states, and the function that checks it.

    ``needs`` names capabilities the check needs beyond its tier's (see
    :data:`ketch_conformance.tiers.REQUIREMENTS`).
    """

    name: str
    tier: str
    transports: tuple[str, ...]
    rule: str
    run: CheckFunction
    needs: tuple[str, ...] = ()


def check(
    name: str,
    rule: str,
    *,
    tier: str = CORE,
    transports: tuple[str, ...] = TRANSPORTS,
    needs: tuple[str, ...] = (),
) -> Callable[[CheckFunction], Check]:
    """Make a check function into a :class:`Check` named ``name`` (nothing is registered).

    Each ``checks`` module lists its checks in its ``RULES``; the package lists the
    modules, which gives :data:`ketch_conformance.CHECKS` and its order.
    """
    if tier not in TIERS:
        raise ValueError(f"check {name!r}: unknown tier {tier!r}; the tiers are {list(TIERS)}")
    unknown = [transport for transport in transports if transport not in TRANSPORTS]
    if unknown:
        raise ValueError(f"check {name!r}: unknown transports {unknown}")

    def make(function: CheckFunction) -> Check:
        return Check(name, tier, transports, rule, function, needs)

    return make


def in_process_subject(context: CheckContext) -> InProcessSubject:
    """The context's subject, which must be the hooks in this process."""
    subject = context.subject
    if not isinstance(subject, InProcessSubject):
        raise TypeError("this check runs in process only")
    return subject


def grpc_subject(context: CheckContext) -> GrpcSubject:
    """The context's subject, which must be a ``ketch serve`` process."""
    subject = context.subject
    if not isinstance(subject, GrpcSubject):
        raise TypeError("this check runs over gRPC only")
    return subject


def concatenate(*parts: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The batches one after the other, input by input."""
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def singles(context: CheckContext, indices: range | list[int]) -> dict[str, np.ndarray]:
    """The sample rows at ``indices``, each asked alone, answers stacked in order."""
    answers = [context.predict(take_rows(context.inputs, [i])) for i in indices]
    return concatenate(*answers)


@dataclass(frozen=True)
class Refused:
    """A batch refused as invalid input, with the message the wrapper gave."""

    message: str


def answer_or_refusal(
    context: CheckContext, inputs: Mapping[str, np.ndarray], what: str
) -> dict[str, np.ndarray] | Refused:
    """The outputs for ``inputs``, or how they were refused as invalid input; else a failure.

    In process a refusal is ``InvalidInputError``, over gRPC ``INVALID_ARGUMENT``;
    anything else is a ConformanceFailure that starts with ``what``.
    """
    subject = context.subject
    if isinstance(subject, GrpcSubject):
        try:
            outputs: Mapping[str, np.ndarray] = subject.infer(inputs)
        except WrapperCallError as error:
            if error.code == "INVALID_ARGUMENT":
                return Refused(error.message)
            raise ConformanceFailure(
                f"{what}: ModelInfer answered {error}; expected an answer or INVALID_ARGUMENT"
            ) from error
    else:
        assert isinstance(subject, InProcessSubject)
        try:
            outputs = subject.framework.batch_predict(subject.model, inputs)
        except InvalidInputError as error:
            return Refused(str(error))
        except PluginFault:
            raise
        except Exception as error:
            raise ConformanceFailure(
                f"{what}: ketch_batch_predict raised {error_name(error)}: {error}; expected an "
                "answer or ketch.InvalidInputError"
            ) from error
    rows = len(next(iter(inputs.values())))
    try:
        return validate_outputs(context.signature, outputs, rows, plugin=subject.label)
    except ContractViolation as error:
        raise ConformanceFailure(f"{what}: {error}") from error
