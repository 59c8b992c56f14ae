"""The README's demo runs end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[3] / "examples" / "quickstart" / "demo.py"


def test_demo_trains_serves_queries_and_stops() -> None:
    result = subprocess.run(
        [sys.executable, str(DEMO)], capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "accuracy: 0.9" in result.stdout
    assert "ketch serve stopped cleanly (exit status 0)" in result.stdout
