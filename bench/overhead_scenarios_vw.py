"""bench/wrapper_overhead.py scenarios for the Vowpal Wabbit plugin."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench_common import Scenario, repeat_rows


def vw_digits_oaa(folder: Path) -> Scenario:
    """``--oaa 10 --probabilities`` on digits, dense rows of 64 columns, served read-only."""
    from sklearn.datasets import load_digits
    from vowpalwabbit import pyvw

    from ketch_vw import dense_example, sidecar_path

    rows, digits = load_digits(return_X_y=True)
    rows = rows / 16.0
    arguments = "--oaa 10 --probabilities --loss_function logistic"
    workspace = pyvw.Workspace(f"--quiet {arguments}")
    for row, digit in zip(rows, digits, strict=True):
        workspace.learn(f"{digit + 1} {dense_example(row, 'f')}")
    path = folder / "digits.vw"
    workspace.save(str(path))
    workspace.finish()
    sidecar_path(path).write_text(arguments + "\n")
    options = {"input": "dense", "n_features": "64", "learn": "false"}
    return Scenario("vw oaa 10 on digits", "vw", path, {"input": repeat_rows(rows)}, options)


SCENARIOS: dict[str, Callable[[Path], Scenario]] = {"vw-digits-oaa": vw_digits_oaa}
