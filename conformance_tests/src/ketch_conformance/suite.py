"""The suite as pytest tests: one test per check, in process and over gRPC.

Run it against any plugin and model::

    pytest --pyargs ketch_conformance.suite --ketch-plugin sklearn --ketch-model model.skops

or, in a plugin's own tests, import the two classes into a test module and
override the ``ketch_target`` fixture there (module scope)::

    from ketch_conformance.suite import TestInProcess, TestOverGrpc

    @pytest.fixture(scope="module")
    def ketch_target(tmp_path_factory) -> ConformanceTarget: ...
"""

from __future__ import annotations

import pytest

from ketch_conformance.checks import IN_PROCESS, OVER_GRPC, CheckContext, checks_for

__all__ = ["TestInProcess", "TestOverGrpc"]


def _params(transport: str) -> list[object]:
    return [pytest.param(item.name, id=item.name) for item in checks_for(transport)]


class TestInProcess:
    """The contract's rules, checked on the hooks themselves."""

    @pytest.mark.parametrize("check_name", _params(IN_PROCESS))
    def test_rule(self, check_name: str, ketch_in_process_context: CheckContext) -> None:
        """One check, in process."""
        from ketch_conformance.checks import CHECKS

        CHECKS[check_name].run(ketch_in_process_context)


class TestOverGrpc:
    """The contract's rules, checked through a real ``ketch serve`` process."""

    @pytest.mark.parametrize("check_name", _params(OVER_GRPC))
    def test_rule(self, check_name: str, ketch_grpc_context: CheckContext) -> None:
        """One check, over gRPC."""
        from ketch_conformance.checks import CHECKS

        CHECKS[check_name].run(ketch_grpc_context)
