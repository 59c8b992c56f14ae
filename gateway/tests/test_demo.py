"""The README's demo runs end to end: train, serve through the gateway, query, stop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "demo.py"


def test_demo_trains_serves_queries_and_stops(tmp_path: Path) -> None:
    quickstart = sorted(DEMO.parent.iterdir())
    result = subprocess.run(
        [sys.executable, str(DEMO), "--folder", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "/apps/digits/predict, one digit per request: accuracy 0.9" in result.stdout
    assert "/v2/models/digits/infer, 32 digits per request: accuracy 0.9" in result.stdout
    assert "ketch gateway stopped cleanly, with its wrapper (exit status 0)" in result.stdout
    assert {p.name for p in tmp_path.iterdir()} >= {"ketch.toml", "digits.skops"}
    assert any(p.name.startswith("ketch-state.sqlite") for p in tmp_path.iterdir())
    assert sorted(DEMO.parent.iterdir()) == quickstart, "the demo wrote beside its sources"
