"""The wrapper's start-up time, from process start to ready, logged once per process.

TensorFlow dominates a wrapper's start-up (importing it takes seconds), and an
operator sizing replicas or timeouts needs that number, so the plugin measures
it and says it once, when the model is described (the last start-up hook).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from ketch_tensorflow.importing import import_seconds

__all__ = ["process_age_seconds", "report_startup", "startup_message"]

_log = logging.getLogger("ketch_tensorflow")
_lock = threading.Lock()
_reported = threading.Event()


def process_age_seconds() -> float | None:
    """Seconds since this process started, from ``/proc``; None where there is no ``/proc``."""
    try:
        stat = Path("/proc/self/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        # the fields after the command name, which is in parentheses and may hold spaces
        fields = stat.rsplit(")", 1)[1].split()
        started_ticks = int(fields[19])  # field 22, starttime, counted from field 3
        return uptime - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def startup_message(load_seconds: float) -> str:
    """What the wrapper says about its start-up."""
    parts = []
    imported = import_seconds()
    if imported is not None:
        parts.append(f"importing TensorFlow {imported:.2f} s")
    parts.append(f"loading the model {load_seconds:.2f} s")
    age = process_age_seconds()
    total = f"{age:.2f} s from process start to ready" if age is not None else "ready"
    return f"tensorflow wrapper start-up: {total} ({', '.join(parts)})"


def report_startup(load_seconds: float) -> None:
    """Log the start-up time, the first time a model is described in this process."""
    with _lock:
        if _reported.is_set():
            return
        _reported.set()
    _log.info(startup_message(load_seconds))
