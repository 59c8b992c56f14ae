"""The Ketch conformance suite: check any wrapper against the contract.

As a pytest plugin (loaded automatically once installed) it is inert until it
is given a target; see :mod:`ketch_conformance.suite`. The checks can also be
run from Python through :data:`CHECKS`; ``ketch conformance`` runs the suite from
the command line, and ``ketch new-plugin`` starts a plugin that passes it.
"""

from ketch_conformance.checks import CHECKS, IN_PROCESS, OVER_GRPC, Check, CheckContext, checks_for
from ketch_conformance.failures import CheckSkipped, ConformanceFailure, assert_outputs_equal
from ketch_conformance.faults import PluginFault, ProcessFault
from ketch_conformance.isolation import IsolatedSubject
from ketch_conformance.labels import default_prediction_error
from ketch_conformance.report import CheckResult, format_table, read_report
from ketch_conformance.sample_inputs import SampleInputsError, read_inputs_file
from ketch_conformance.samples import random_inputs, take_rows
from ketch_conformance.subjects import (
    GrpcSubject,
    Hooks,
    InProcessSubject,
    Subject,
    load_in_process,
)
from ketch_conformance.target import ConformanceTarget, PredictionError
from ketch_conformance.tiers import NOT_APPLICABLE_PREFIX, TIERS, not_applicable

__all__ = [
    "CHECKS",
    "IN_PROCESS",
    "NOT_APPLICABLE_PREFIX",
    "OVER_GRPC",
    "TIERS",
    "Check",
    "CheckContext",
    "CheckResult",
    "CheckSkipped",
    "ConformanceFailure",
    "ConformanceTarget",
    "GrpcSubject",
    "Hooks",
    "InProcessSubject",
    "IsolatedSubject",
    "PluginFault",
    "PredictionError",
    "ProcessFault",
    "SampleInputsError",
    "Subject",
    "assert_outputs_equal",
    "checks_for",
    "default_prediction_error",
    "format_table",
    "load_in_process",
    "not_applicable",
    "random_inputs",
    "read_inputs_file",
    "read_report",
    "take_rows",
]
