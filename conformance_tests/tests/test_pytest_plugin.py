"""The pytest plugin: inert without a target; strict mode, the report, expected failures and
the model-factory hook with one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ketch_conformance import CHECKS
from ketch_conformance.pytest_plugin import SUITE_PATH

REFERENCE = "ketch_conformance.reference:plugin"
QUIET = ("-p", "no:cacheprovider")


@pytest.fixture
def labels_file(tmp_path: Path, digit_rows: tuple[np.ndarray, np.ndarray]) -> Path:
    np.save(tmp_path / "labels.npy", digit_rows[1][900:916])
    return tmp_path / "labels.npy"


@pytest.fixture
def inputs_file(tmp_path: Path, digit_rows: tuple[np.ndarray, np.ndarray]) -> Path:
    np.savez(tmp_path / "inputs.npz", input=digit_rows[0][900:916])
    return tmp_path / "inputs.npz"


def test_inert_without_a_target(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_one():\n    assert True\n")
    result = pytester.runpytest_subprocess(*QUIET)
    result.assert_outcomes(passed=1)
    assert "ketch conformance" not in result.stdout.str()


def test_command_line_target_runs_the_whole_suite_strictly_with_a_report(
    pytester: pytest.Pytester, reference_model: Path, inputs_file: Path, labels_file: Path
) -> None:
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        *QUIET,
        "--ketch-plugin",
        REFERENCE,
        "--ketch-model",
        str(reference_model),
        "--ketch-inputs",
        str(inputs_file),
        "--ketch-labels",
        str(labels_file),
        "--ketch-strict",
        "--ketch-report",
        str(report),
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*ketch conformance (strict)*", "core *0 *0 *0 *0", "total*"])
    document = json.loads(report.read_text())
    assert (document["plugin"], document["strict"]) == (REFERENCE, True)
    results = document["results"]
    assert len(results) == outcomes["passed"] + outcomes["skipped"]
    assert {result["outcome"] for result in results} == {"passed", "not_applicable"}
    assert set(results[0]) == {
        "check",
        "tier",
        "transport",
        "target",
        "outcome",
        "message",
        "duration",
        "nodeid",
        "fault",
    }
    by_check = {(result["check"], result["transport"]): result for result in results}
    assert by_check[("observe_moves_toward_labels", "grpc")]["outcome"] == "passed"
    not_applicable = by_check[("odd_bytes_handled", "in_process")]
    assert not_applicable["outcome"] == "not_applicable"
    assert not_applicable["message"] == "the wrapper does not declare an input of datatype BYTES"
    core = [result for result in results if result["tier"] == "core"]
    assert document["totals"]["core"] == {"passed": len(core)}
    assert SUITE_PATH.exists()


@pytest.mark.parametrize(
    ("strict", "outcomes"),
    [(["--ketch-strict"], {"failed": 1, "skipped": 1}), ([], {"skipped": 2})],
    ids=["strict", "not-strict"],
)
def test_strict_mode_fails_a_skip_but_not_a_tier_that_does_not_apply(
    pytester: pytest.Pytester, reference_model: Path, strict: list[str], outcomes: dict[str, int]
) -> None:
    result = pytester.runpytest_subprocess(
        *QUIET,
        "--ketch-plugin",
        REFERENCE,
        "--ketch-model",
        str(reference_model),
        "-k",
        "TestInProcess and (observe_moves_toward_labels or odd_bytes_handled)",
        *strict,
    )
    result.assert_outcomes(**outcomes)
    if strict:
        result.stdout.fnmatch_lines(
            ["*strict mode allows no skips: the target gives no labels to learn from*"]
        )


def test_the_ini_setting_makes_the_suite_strict(
    pytester: pytest.Pytester, reference_model: Path
) -> None:
    pytester.makeini("[pytest]\nketch_strict = true\n")
    model = pytester.path / reference_model.name  # a path elsewhere would move the rootdir
    model.write_bytes(reference_model.read_bytes())
    result = pytester.runpytest_subprocess(
        *QUIET,
        "--ketch-plugin",
        REFERENCE,
        "--ketch-model",
        str(model),
        "-k",
        "TestInProcess and observe_moves_toward_labels",
    )
    result.assert_outcomes(failed=1)


def test_expected_failures_are_xfails_and_an_unexpected_pass_fails(
    pytester: pytest.Pytester,
    reference_model: Path,
    broken_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHONPATH", broken_env["PYTHONPATH"])
    expected = pytester.path / "known.txt"
    expected.write_text(
        "# known failures of reorder_rows\n"
        "rows_in_order  it answers in reverse\n"
        "in_process::batch_equals_singles  the same fault\n"
        "empty_batch  this one passes, so the file is out of date\n"
    )
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        *QUIET,
        "--ketch-plugin",
        "broken_plugins:reorder_rows",
        "--ketch-model",
        str(reference_model),
        "--ketch-xfail",
        str(expected),
        "--ketch-report",
        str(report),
        "-k",
        "TestInProcess and (rows_in_order or batch_equals_singles or empty_batch)",
    )
    result.assert_outcomes(xfailed=2, failed=1)
    result.stdout.fnmatch_lines(["*XPASS(strict)*this one passes*"])
    outcomes = {
        item["check"]: item["outcome"] for item in json.loads(report.read_text())["results"]
    }
    assert outcomes == {
        "rows_in_order": "xfailed",
        "batch_equals_singles": "xfailed",
        "empty_batch": "failed",
    }


def test_a_bad_expected_failures_file_is_a_usage_error(
    pytester: pytest.Pytester, reference_model: Path
) -> None:
    expected = pytester.path / "known.txt"
    expected.write_text("rows_in_order  fine\nrows_in_ordre  a typo\n")
    result = pytester.runpytest_subprocess(
        *QUIET, "--ketch-plugin", REFERENCE, "--ketch-model", str(reference_model),
        "--ketch-xfail", str(expected),
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*known.txt:2: no check is named 'rows_in_ordre'*"])


def test_the_model_factory_hook_builds_the_targets(
    pytester: pytest.Pytester, reference_model: Path
) -> None:
    pytester.makeconftest(
        f"""
        from pathlib import Path
        from ketch_conformance import ConformanceTarget

        def pytest_ketch_conformance_targets(plugin, config):
            if plugin != {REFERENCE!r}:
                return None

            def build(folder):
                model = Path(folder, "model.npz")
                model.write_bytes(Path({str(reference_model)!r}).read_bytes())
                return ConformanceTarget(plugin, model)

            return {{"first": build, "second": build}}
        """
    )
    result = pytester.runpytest_subprocess(
        *QUIET, "--ketch-plugin", REFERENCE, "-v", "-k", "TestInProcess and (loads or repeatable)"
    )
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*test_rule?first-loads? PASSED*", "*test_rule?second-loads? *"])


def test_a_plugin_without_a_model_or_a_factory_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    result = pytester.runpytest_subprocess(*QUIET, "--ketch-plugin", REFERENCE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*without --ketch-model: pass a model, or give the plugin*"])


def test_command_line_target_reports_a_broken_wrapper(
    pytester: pytest.Pytester,
    reference_model: Path,
    broken_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHONPATH", broken_env["PYTHONPATH"])
    result = pytester.runpytest_subprocess(
        *QUIET,
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
    assert outcomes["passed"] + outcomes["failed"] + outcomes["skipped"] == len(
        [check for check in CHECKS.values() if "in_process" in check.transports]
    )


def test_a_module_marked_may_skip_may_lack_its_target_but_not_skip_a_check(
    pytester: pytest.Pytester, reference_model: Path
) -> None:
    pytester.makeini("[pytest]\nketch_strict = true\n")
    pytester.makepyfile(
        test_gpu_target=f"""
        import pytest
        from ketch_conformance import ConformanceTarget
        from ketch_conformance.suite import TestInProcess

        pytestmark = pytest.mark.ketch_target_may_skip("needs a GPU")

        @pytest.fixture(scope="module", params=["absent", "present"])
        def ketch_target(request):
            if request.param == "absent":
                pytest.skip("no GPU here")
            return ConformanceTarget("{REFERENCE}", {str(reference_model)!r})
        """
    )
    result = pytester.runpytest_subprocess(
        *QUIET, "-k", "loads or observe_moves_toward_labels", "-rs"
    )
    result.assert_outcomes(passed=1, skipped=2, failed=1)
    result.stdout.fnmatch_lines(
        ["*strict mode allows no skips: the target gives no labels to learn from*", "*no GPU here*"]
    )
