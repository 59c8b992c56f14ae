"""``ketch conformance``: the suite from the command line, a table by tier, and the exit status."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conformance_test_support import ketch

REFERENCE = "ketch_conformance.reference:plugin"


def test_a_conformant_plugin_passes_strictly_with_a_table_and_a_report(
    tmp_path: Path, reference_model: Path, digit_rows: tuple[np.ndarray, np.ndarray]
) -> None:
    np.savez(tmp_path / "rows.npz", input=digit_rows[0][:16])
    np.save(tmp_path / "labels.npy", digit_rows[1][:16])
    model = tmp_path / "digits.npz"
    model.write_bytes(reference_model.read_bytes())
    result = ketch(
        "conformance",
        REFERENCE,
        "digits.npz",
        "--inputs",
        "rows.npz",
        "--labels",
        "labels.npy",
        "--strict",
        "--report",
        "report.json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"ketch conformance: plugin {REFERENCE!r}, model digits.npz")
    table = lines[lines.index(next(line for line in lines if line.startswith("tier"))) :]
    assert table[0].split() == ["tier", "passed", "failed", "skipped", "n/a", "xfail"]
    assert table[2].split()[0] == "core"
    assert table[2].split()[2:4] == ["0", "0"]
    assert lines[-1].endswith("checks (strict): the plugin conforms")
    document = json.loads((tmp_path / "report.json").read_text())
    assert document["strict"] is True
    assert {result["outcome"] for result in document["results"]} == {"passed", "not_applicable"}
    assert not (tmp_path / ".pytest_cache").exists()


def test_a_broken_plugin_fails_with_the_failures_listed(
    tmp_path: Path, reference_model: Path
) -> None:
    result = ketch(
        "conformance",
        "broken_plugins:reorder_rows",
        str(reference_model),
        "-k",
        "TestInProcess",
        "--pytest-args",
        "--maxfail 50",
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "  in_process rows_in_order: the outputs of a shuffled batch are not in its order"
        in result.stdout
    )
    assert "checks (not strict): the plugin does NOT conform:" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no_such_plugin_anywhere", "model.npz"], "no Ketch plugin named"),
        ([REFERENCE], "without --ketch-model: pass a model"),
    ],
)
def test_a_run_that_cannot_start_says_why_and_fails(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "model.npz").write_bytes(b"")
    result = ketch("conformance", *args, cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
