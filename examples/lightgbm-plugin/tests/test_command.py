"""``ketch conformance lightgbm``: the suite from the command line, on the plugin's own targets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_command_certifies_the_plugin_on_targets_it_builds(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ketch", "conformance", "lightgbm", "--strict", "-k", "binary"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "model (the plugin's own targets)" in result.stdout
    assert result.stdout.rstrip().endswith("checks (strict): the plugin conforms")
