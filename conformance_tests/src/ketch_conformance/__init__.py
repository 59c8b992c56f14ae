"""The Ketch conformance suite: check any wrapper against the contract.

As a pytest plugin (loaded automatically once installed) it is inert until it
is given a target; see :mod:`ketch_conformance.suite`. The checks can also be
run from Python through :data:`CHECKS`.
"""

from ketch_conformance.checks import CHECKS, IN_PROCESS, OVER_GRPC, Check, CheckContext, checks_for
from ketch_conformance.failures import ConformanceFailure, assert_outputs_equal
from ketch_conformance.samples import random_inputs, take_rows
from ketch_conformance.subjects import GrpcSubject, InProcessSubject, Subject, load_in_process
from ketch_conformance.target import ConformanceTarget

__all__ = [
    "CHECKS",
    "IN_PROCESS",
    "OVER_GRPC",
    "Check",
    "CheckContext",
    "ConformanceFailure",
    "ConformanceTarget",
    "GrpcSubject",
    "InProcessSubject",
    "Subject",
    "assert_outputs_equal",
    "checks_for",
    "load_in_process",
    "random_inputs",
    "take_rows",
]
