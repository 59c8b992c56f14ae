"""``ketch new-plugin``: a skeleton that ruff and mypy accept, whose tests collect and run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ketch_conformance.scaffold import new_plugin

BIN = Path(sys.executable).parent


def run(*command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd / "src")}
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=600
    )


@pytest.fixture(scope="module")
def skeleton(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("new") / "ketch-acme"
    result = run(
        sys.executable, "-m", "ketch", "new-plugin", "acme", "--folder", str(folder),
        cwd=folder.parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pip install -e '.[test]' && pytest" in result.stdout
    return folder


def test_the_skeleton_has_the_files_a_plugin_needs(skeleton: Path) -> None:
    files = sorted(
        str(path.relative_to(skeleton)) for path in skeleton.rglob("*") if path.is_file()
    )
    assert files == [
        "README.md",
        "pyproject.toml",
        "src/ketch_acme/__init__.py",
        "src/ketch_acme/conformance.py",
        "src/ketch_acme/model.py",
        "src/ketch_acme/plugin.py",
        "tests/test_conformance.py",
        "tests/test_plugin.py",
    ]
    pyproject = (skeleton / "pyproject.toml").read_text()
    assert 'name = "ketch-acme"' in pyproject
    assert 'acme = "ketch_acme.plugin"' in pyproject
    assert "ketch_strict = true" in pyproject
    assert "$" not in "".join(path.read_text() for path in skeleton.rglob("*.py"))


def test_ruff_and_mypy_accept_the_skeleton(skeleton: Path) -> None:
    for command in (["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]):
        result = run(str(BIN / command[0]), *command[1:], cwd=skeleton)
        assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"


def test_the_skeleton_tests_collect_and_its_own_rules_pass(skeleton: Path) -> None:
    collected = run(
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
        cwd=skeleton,
    )  # fmt: skip
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert "TestInProcess::test_rule[rows_in_order]" in collected.stdout
    assert "TestOverGrpc::test_rule[sigterm_finishes_calls]" in collected.stdout
    ran = run(
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "tests/test_plugin.py",
        cwd=skeleton,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_bad_names_and_existing_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="use lower-case letters"):
        new_plugin("My-Plugin", tmp_path / "x")
    with pytest.raises(FileExistsError, match="already exists"):
        new_plugin("fine", tmp_path)
