"""Headless Chromium from Debian's packages, driven by Playwright: nothing is downloaded.

``KETCH_REQUIRE_BROWSER=1`` (set by CI) turns a missing browser into a failure
instead of a skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, sync_playwright

CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def system_chromium() -> str:
    """The path of Debian's chromium; skips (or fails, when CI requires it) without one."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "no chromium on this machine (apt-get install chromium)"
        if os.environ.get("KETCH_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


@contextlib.contextmanager
def chromium(profile: Path, width: int = 1400, height: int = 1000) -> Iterator[BrowserContext]:
    """A fresh headless Chromium (its profile in ``profile``), as a Playwright context."""
    executable = system_chromium()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            headless=True,
            args=list(CHROMIUM_FLAGS),
            viewport={"width": width, "height": height},
        )
        try:
            yield context
        finally:
            context.close()
