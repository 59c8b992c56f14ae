"""The suite as pytest tests: one test per check, in process and over gRPC.

Run it against any plugin and model::

    pytest --pyargs ketch_conformance.suite --ketch-plugin sklearn --ketch-model model.skops

or, in a plugin's own tests, import the two classes into a test module and
override the ``ketch_target`` fixture there (module scope)::

    from ketch_conformance.suite import TestInProcess, TestOverGrpc

    @pytest.fixture(scope="module")
    def ketch_target(tmp_path_factory) -> ConformanceTarget: ...

A check whose tier does not apply to the wrapper is skipped with a reason that
starts with ``not applicable:``; a check that applies but cannot run here is
skipped with its reason, which strict mode (``--ketch-strict``) turns into a failure.
"""

from __future__ import annotations

from typing import ClassVar

import pytest

from ketch_conformance.checks import CHECKS, IN_PROCESS, OVER_GRPC, CheckContext, checks_for
from ketch_conformance.failures import CheckSkipped
from ketch_conformance.tiers import NOT_APPLICABLE_PREFIX, not_applicable

__all__ = ["TestInProcess", "TestOverGrpc", "run_check"]


def _params(transport: str) -> list[object]:
    return [pytest.param(item.name, id=item.name) for item in checks_for(transport)]


def run_check(check_name: str, context: CheckContext) -> None:
    """Run one check as a test: not applicable or unable to run here is a skip with a reason."""
    item = CHECKS[check_name]
    reason = not_applicable(item, context.signature)
    if reason is not None:
        pytest.skip(NOT_APPLICABLE_PREFIX + reason)
    try:
        item.run(context)
    except CheckSkipped as skipped:
        pytest.skip(str(skipped))


class TestInProcess:
    """The contract's rules, checked on the hooks themselves."""

    transport: ClassVar[str] = IN_PROCESS

    @pytest.mark.parametrize("check_name", _params(IN_PROCESS))
    def test_rule(self, check_name: str, ketch_in_process_context: CheckContext) -> None:
        """One check, in process."""
        run_check(check_name, ketch_in_process_context)


class TestOverGrpc:
    """The contract's rules, checked through a real ``ketch serve`` process."""

    transport: ClassVar[str] = OVER_GRPC

    @pytest.mark.parametrize("check_name", _params(OVER_GRPC))
    def test_rule(self, check_name: str, ketch_grpc_context: CheckContext) -> None:
        """One check, over gRPC."""
        run_check(check_name, ketch_grpc_context)
