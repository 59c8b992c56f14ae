"""A plugin that exits, crashes, hangs or leaks fails the check it was in; the run goes on.

In process the suite calls the hooks in a worker process; over gRPC it calls a
``ketch serve`` process. Each fault below is reported against its check with what
happened and the plugin call in progress, and the next check passes on a fresh
process. ``ketch conformance`` reports a run that pytest itself could not finish.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conformance_fault_plugins import EXIT_STATUS
from conformance_test_support import grpc_context, isolated_context, ketch

from ketch_conformance import CheckContext, PluginFault
from ketch_conformance.checks.resources import MEMORY_TOLERANCE_PER_CALL
from ketch_conformance.faults import EXIT, NO_ANSWER, SIGNAL
from ketch_conformance.suite import run_check

CALL_TIMEOUT = 2.0
"""The per-call limit here: a hang is for ever, and an honest call takes milliseconds."""


@pytest.fixture(scope="module")
def sample(digit_rows: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return digit_rows[0][1000:1012]


def _context(
    transport: str, plugin: str, model: Path, sample: np.ndarray
) -> AbstractContextManager[CheckContext]:
    reference = f"conformance_fault_plugins:{plugin}"
    inputs = {"input": sample}
    if transport == "in_process":
        return isolated_context(reference, model, inputs, call_timeout=CALL_TIMEOUT)
    return grpc_context(reference, model, inputs, call_timeout=CALL_TIMEOUT, stop_timeout=5.0)


@pytest.fixture
def faulty(
    request: pytest.FixtureRequest, reference_model: Path, sample: np.ndarray
) -> Iterator[CheckContext]:
    transport, plugin = request.param
    with _context(transport, plugin, reference_model, sample) as context:
        yield context


def _fault_of(check: str, context: CheckContext, message: str) -> dict[str, Any]:
    with pytest.raises(PluginFault, match=message) as caught:
        run_check(check, context)
    return caught.value.fault.as_json()


WORKER = "the worker process that runs the hooks"
WRAPPER = r"the wrapper process \(ketch serve\)"
AFTER = "; the checks after it get a fresh process"


@pytest.mark.parametrize(
    ("faulty", "check", "message", "kind", "then"),
    [
        (
            ("in_process", "exits_on_bad_input"),
            "bad_shape_rejected",
            rf"^{WORKER} exited with status {EXIT_STATUS} during ketch_batch_predict on a batch "
            rf"of 12 rows \('input' \[12, 65\] float32\), in check bad_shape_rejected{AFTER}",
            EXIT,
            "empty_batch",
        ),
        (
            ("in_process", "segfaults_on_empty_batch"),
            "empty_batch",
            rf"^{WORKER} was killed by signal 11 \(SIGSEGV\) during ketch_batch_predict on a "
            rf"batch of 0 rows \('input' \[0, 64\] float32\), in check empty_batch{AFTER}\n"
            r"the end of its log:\n(.|\n)*Segmentation fault(.|\n)*conformance_fault_plugins.py",
            SIGNAL,
            "rows_in_order",
        ),
        (
            ("grpc", "segfaults_on_empty_batch"),
            "empty_batch",
            rf"^{WRAPPER} was killed by signal 11 \(SIGSEGV\) during ModelInfer "
            r"\(ketch_batch_predict\) on a batch of 0 rows \('input' \[0, 64\] float32\), in "
            rf"check empty_batch{AFTER}",
            SIGNAL,
            "rows_in_order",
        ),
        (
            ("in_process", "hangs_on_one_row"),
            "batch_equals_singles",
            rf"^{WORKER} gave no answer in 2 s \(the limit for one plugin call\) during "
            r"ketch_batch_predict on a batch of 1 row \('input' \[1, 64\] float32\), in check "
            rf"batch_equals_singles{AFTER}",
            NO_ANSWER,
            "repeatable",
        ),
        (
            ("grpc", "hangs_on_one_row"),
            "batch_equals_singles",
            rf"^{WRAPPER} gave no answer in 2 s \(the limit for one plugin call\) during "
            r"ModelInfer \(ketch_batch_predict\) on a batch of 1 row \('input' \[1, 64\] "
            rf"float32\), in check batch_equals_singles{AFTER}",
            NO_ANSWER,
            "repeatable",
        ),
    ],
    indirect=["faulty"],
    ids=["exit", "segfault-in-process", "segfault-grpc", "hang-in-process", "hang-grpc"],
)
def test_a_fault_fails_its_check_and_the_next_check_gets_a_fresh_process(
    faulty: CheckContext, check: str, message: str, kind: str, then: str
) -> None:
    fault = _fault_of(check, faulty, message)
    assert fault["kind"] == kind
    run_check(then, faulty)
    assert faulty.subject.fault() is None


@pytest.mark.parametrize(
    ("transport", "where"), [("in_process", WORKER), ("grpc", WRAPPER)], ids=["in-process", "grpc"]
)
def test_a_plugin_that_keeps_memory_from_every_call_fails_the_memory_check(
    transport: str, where: str, reference_model: Path, sample: np.ndarray
) -> None:
    with _context(transport, "leaks_memory", reference_model, sample) as context:
        with pytest.raises(AssertionError) as caught:
            run_check("no_memory_growth", context)
        run_check("no_resource_growth", context)
    assert not isinstance(caught.value, PluginFault)
    message = str(caught.value)
    assert re.match(rf"{where} leaks memory: resident memory grew in each of 3 rounds", message)
    found = re.search(r"about (\d+) KiB a call", message)
    assert found is not None, message
    assert int(found.group(1)) > 4 * MEMORY_TOLERANCE_PER_CALL // 1024, message
    if transport == "in_process":
        assert "heap in use (malloc) grew in each of 3 rounds" in message


def test_the_command_reports_a_crash_against_its_check_and_runs_the_rest(
    tmp_path: Path, reference_model: Path
) -> None:
    result = ketch(
        "conformance",
        "conformance_fault_plugins:segfaults_on_empty_batch",
        str(reference_model),
        "--report",
        "report.json",
        "-k",
        "empty_batch or rows_in_order or repeatable",
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "  in_process empty_batch: the worker process that runs the hooks was killed by signal 11 "
        "(SIGSEGV) during ketch_batch_predict on a batch of 0 rows" in result.stdout
    )
    assert (
        "  grpc empty_batch: the wrapper process (ketch serve) was killed by signal 11 (SIGSEGV) "
        "during ModelInfer" in result.stdout
    )
    document = json.loads((tmp_path / "report.json").read_text())
    assert document["finished"] is True
    outcomes = {
        (r["check"], r["transport"]): (r["outcome"], r["fault"]) for r in document["results"]
    }
    for transport in ("in_process", "grpc"):
        outcome, fault = outcomes[("empty_batch", transport)]
        assert (outcome, fault["kind"], fault["detail"]) == (
            "failed",
            SIGNAL,
            "was killed by signal 11 (SIGSEGV)",
        )
        assert fault["call"].endswith("on a batch of 0 rows ('input' [0, 64] float32)")
        for check in ("rows_in_order", "repeatable"):
            assert outcomes[(check, transport)] == ("passed", None)


def test_the_command_says_where_a_run_that_died_had_got_to(
    tmp_path: Path, reference_model: Path
) -> None:
    (tmp_path / "dying_targets.py").write_text(
        f"""
import os
from pathlib import Path
from ketch_conformance import ConformanceTarget

def pytest_ketch_conformance_targets(plugin, config):
    def first(folder):
        return ConformanceTarget(plugin, Path({str(reference_model)!r}))

    def second(folder):
        os._exit(7)

    return {{"first": first, "second": second}}
""",
        encoding="utf-8",
    )
    result = ketch(
        "conformance",
        "ketch_conformance.reference:plugin",
        "--report",
        "report.json",
        "-k",
        "TestInProcess and (loads or repeatable)",
        "--pytest-args",
        "-p dying_targets",
        cwd=tmp_path,
    )
    assert result.returncode == 7, result.stdout + result.stderr
    assert (
        "ketch conformance: pytest stopped (exit status 7) while running in_process loads "
        "[second]; the table counts the 2 checks that had finished" in result.stdout
    )
    document = json.loads((tmp_path / "report.json").read_text())
    assert (document["finished"], document["running"]) == (False, "in_process loads [second]")
