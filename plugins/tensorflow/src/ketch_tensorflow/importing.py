"""Importing TensorFlow on first use: quietly, with the Keras backend set, and timed.

TensorFlow's native code writes informational lines to the process's standard
error while it is imported (oneDNN and CPU-feature notices, absl's warning that
logging is not initialised yet), whatever ``TF_CPP_MIN_LOG_LEVEL`` says. A
wrapper's log should start with what matters, so by default the import runs with
file descriptor 2 captured, and only the lines that are not such notices are
written back. ``TF_CPP_MIN_LOG_LEVEL`` then defaults to 2, which keeps later
native info and warning lines (one per rejected request, say) out of the log.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import ModuleType
from typing import Final

from ketch import ModelLoadError

__all__ = ["import_seconds", "is_startup_noise", "tensorflow"]

_NOISE: Final = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called"),
    re.compile(r"^I\d{4} "),  # absl's INFO lines: I0000 00:00:... file.cc:123] ...
    re.compile(r"^To enable the following instructions: .* rebuild TensorFlow"),
)
_import_lock = threading.Lock()
_import_seconds: dict[str, float] = {}


def is_startup_noise(line: str) -> bool:
    """Whether ``line`` is one of TensorFlow's informational start-up notices."""
    return any(pattern.match(line) for pattern in _NOISE)


@contextmanager
def _stderr_captured() -> Iterator[list[str]]:
    """Send file descriptor 2 to a temporary file; yields the list that receives its lines."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines += capture.read().decode("utf-8", "replace").splitlines(keepends=True)


def _import(quiet: bool) -> ModuleType:
    if not quiet:
        import tensorflow

        loud: ModuleType = tensorflow
        return loud
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    lines: list[str] = []
    try:
        with _stderr_captured() as lines:
            import tensorflow
    finally:
        kept = [line for line in lines if not is_startup_noise(line)]
        if kept:
            sys.stderr.writelines(kept)
            sys.stderr.flush()
    module: ModuleType = tensorflow
    return module


def _grow_gpu_memory(tf: ModuleType) -> None:
    """Let several wrappers share a GPU: take its memory as needed, not all at once."""
    for gpu in tf.config.list_physical_devices("GPU"):
        # a GPU that is already initialised keeps its setting: too late, and harmless
        with suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)


def tensorflow(quiet: bool = True) -> ModuleType:
    """The ``tensorflow`` module, imported on the first call (quietly unless ``quiet`` is False).

    ``quiet`` matters only on the first call, which imports TensorFlow. Sets
    ``KERAS_BACKEND=tensorflow`` unless it is set already, because the plugin runs
    Keras models as TensorFlow functions.
    """
    with _import_lock:
        already = sys.modules.get("tensorflow")
        if already is not None:
            return already
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        started = time.perf_counter()
        try:
            module = _import(quiet)
        except ImportError as error:
            raise ModelLoadError(
                f"TensorFlow is not installed ({error}): install ketch-tensorflow[cpu] "
                "or ketch-tensorflow[gpu]"
            ) from error
        _grow_gpu_memory(module)
        _import_seconds["tensorflow"] = time.perf_counter() - started
        return module


def import_seconds() -> float | None:
    """How long this process took to import TensorFlow; None when the plugin did not import it."""
    return _import_seconds.get("tensorflow")
