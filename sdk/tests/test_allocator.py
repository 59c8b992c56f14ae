"""The wrapper's malloc tuning: no page faults for per-call buffers, and ways to refuse it."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sdk_test_plugins import REFERENCE_PLUGIN

from ketch import start_wrapper, tune_allocator
from ketch.allocator import TUNING_VARIABLE

ON_GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
needs_glibc = pytest.mark.skipif(not ON_GLIBC, reason="the tuning applies to glibc's malloc only")

# What a wrapper does per call, in numpy: decode a request, copy its rows, compute two
# 1 MiB activations, encode a small answer; prints minor page faults per call.
PER_CALL_BUFFERS = """
import resource, sys
import numpy as np
from ketch import tune_allocator
print(tune_allocator(), file=sys.stderr)
def call():
    request = np.ones(512 * 64, np.float32).tobytes()
    rows = np.frombuffer(request, np.float32).reshape(512, 64).copy()
    hidden = np.ones((512, 512), np.float32) * rows[:, :1]
    return ((hidden + 1.0)[:, :10] + 0).tobytes()
for _ in range(5):
    call()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    call()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 100)
"""


def faults_per_call(**env: str) -> float:
    """Minor page faults per simulated call in a fresh interpreter with ``env`` added."""
    environment = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    result = subprocess.run(
        [sys.executable, "-c", PER_CALL_BUFFERS],
        env={**environment, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return float(result.stdout.strip())


@needs_glibc
def test_tuning_removes_the_page_faults_of_per_call_buffers() -> None:
    untuned = faults_per_call(**{TUNING_VARIABLE: "0"})
    tuned = faults_per_call()
    assert untuned > 100, f"glibc's defaults faulted only {untuned} pages per call"
    assert tuned < untuned / 20, f"tuned: {tuned} page faults per call, untuned: {untuned}"


@needs_glibc
def test_glibc_tunables_for_malloc_are_left_alone() -> None:
    chosen = "glibc.malloc.trim_threshold=131072"
    assert faults_per_call(GLIBC_TUNABLES=chosen) > 100


@pytest.mark.parametrize("value", ["0", "off", "false", "No"])
def test_the_variable_switches_tuning_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(TUNING_VARIABLE, value)
    assert "off" in tune_allocator()


def test_glibc_tunables_are_named_when_they_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TUNING_VARIABLE, raising=False)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    assert tune_allocator() == "malloc tuning left to GLIBC_TUNABLES"


@needs_glibc
def test_ketch_serve_says_how_its_allocator_is_tuned(softmax_path: Path) -> None:
    with start_wrapper(REFERENCE_PLUGIN, softmax_path, echo_stderr=False) as wrapper:
        deadline = time.monotonic() + 10
        while not any("malloc: mmap threshold 32 MiB" in line for line in wrapper.stderr_tail):
            assert time.monotonic() < deadline, "\n".join(wrapper.stderr_tail)
            time.sleep(0.05)
