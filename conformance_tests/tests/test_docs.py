"""docs/conformance.md lists every check with its tier and transports, and every tier."""

from __future__ import annotations

import re
from pathlib import Path

from ketch_conformance import CHECKS, IN_PROCESS, OVER_GRPC, TIERS

DOC = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"
ROW = re.compile(r"^\| `(\w+)` \| (\w+) \| (✓?) *\| (✓?) *\|", re.MULTILINE)


def test_every_check_is_documented_with_its_tier_and_transports() -> None:
    documented = {
        name: (tier, bool(in_process), bool(grpc))
        for name, tier, in_process, grpc in ROW.findall(DOC.read_text(encoding="utf-8"))
    }
    registered = {
        check.name: (check.tier, IN_PROCESS in check.transports, OVER_GRPC in check.transports)
        for check in CHECKS.values()
    }
    assert documented == registered


def test_every_tier_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for tier in TIERS:
        assert f"| `{tier}` |" in text, f"docs/conformance.md does not describe the tier {tier}"
