"""The pytest plugin: inert without a target, the whole suite with one."""

from __future__ import annotations

from pathlib import Path

import pytest

from ketch_conformance.pytest_plugin import SUITE_PATH


def test_inert_without_a_target(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_one():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_command_line_target_runs_the_whole_suite(
    pytester: pytest.Pytester, reference_model: Path
) -> None:
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--ketch-plugin",
        "ketch_conformance.reference:plugin",
        "--ketch-model",
        str(reference_model),
    )
    result.assert_outcomes(passed=25)
    assert SUITE_PATH.exists()


def test_command_line_target_reports_a_broken_wrapper(
    pytester: pytest.Pytester,
    reference_model: Path,
    broken_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHONPATH", broken_env["PYTHONPATH"])
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--ketch-plugin",
        "broken_plugins:reorder_rows",
        "--ketch-model",
        str(reference_model),
        "-k",
        "TestInProcess",
    )
    result.stdout.fnmatch_lines(["*rows_in_order*", "*shuffled batch are not in its order*"])
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] >= 2
