"""``ketch serve --cpus``: the CPU list format, and a wrapper that runs on the CPUs it names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sdk_test_plugins import REFERENCE_PLUGIN

from ketch import WrapperClient, start_wrapper
from ketch.affinity import parse_cpu_list, pin_process


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("0", {0}), ("0,2", {0, 2}), ("1-3", {1, 2, 3}), ("0, 4-5", {0, 4, 5}), ("2-2", {2})],
)
def test_cpu_lists(text: str, cpus: set[int]) -> None:
    assert parse_cpu_list(text) == cpus


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "'' is not a CPU number"),
        ("a", "'a' is not a CPU number"),
        ("0,,1", "'' is not a CPU number"),
        ("-1", "'' is not a CPU number"),
        ("3-1", "the range '3-1' runs backwards"),
    ],
)
def test_malformed_cpu_lists_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_cpu_list(text)


def test_pinning_to_a_cpu_this_process_cannot_use_names_it() -> None:
    absent = max(os.sched_getaffinity(0)) + 1000
    with pytest.raises(ValueError, match=f"CPU\\(s\\) {absent} are not available"):
        pin_process(frozenset({absent}))


def _allowed_cpus(pid: int) -> set[str]:
    """The ``Cpus_allowed_list`` of every thread of process ``pid``."""
    lists = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                lists.add(line.split(":", 1)[1].strip())
    return lists


def test_a_pinned_wrapper_runs_its_calls_on_the_cpu_it_names(
    softmax_path: Path, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    cpu = min(os.sched_getaffinity(0))
    with (
        start_wrapper(REFERENCE_PLUGIN, softmax_path, extra_args=["--cpus", str(cpu)]) as wrapper,
        WrapperClient(wrapper.address) as client,
    ):
        outputs = client.infer({"input": digits[0][:4]})
        assert outputs["probabilities"].shape == (4, 10)
        assert str(cpu) in _allowed_cpus(wrapper.pid)
        main_thread = Path(f"/proc/{wrapper.pid}/status").read_text()
        assert f"Cpus_allowed_list:\t{cpu}\n" in main_thread


def test_cpus_outside_the_process_set_are_a_clear_start_failure(softmax_path: Path) -> None:
    absent = max(os.sched_getaffinity(0)) + 1000
    for args, message in (
        (["--cpus", str(absent)], f"--cpus: CPU(s) {absent} are not available"),
        (["--cpus", "two"], "argument --cpus: CPU list 'two'"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "ketch", "serve", REFERENCE_PLUGIN, str(softmax_path), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, args
        assert message in result.stderr, result.stderr
