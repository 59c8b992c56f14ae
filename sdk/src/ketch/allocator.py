"""Keep freed memory in the wrapper process instead of handing it back after every call.

glibc's malloc serves allocations of 128 KiB and more with fresh ``mmap`` pages and
returns the top of its heap to the kernel once enough of it is free; both thresholds
then move with what the program frees. A wrapper allocates buffers of the same large
sizes on every call (the decoded request, the framework's activations, the encoded
answer), and that interplay can leave each call faulting in megabytes of zeroed pages:
for a 64-512-512-10 MLP converted from ONNX at 512 rows, about 990 minor page faults
and 2 ms of a 5.7 ms call. Fixing the thresholds (``mallopt``) serves those buffers
from memory the process already holds.

The cost: a wrapper keeps its high-water mark of heap memory (up to the trim threshold
free at the top of a heap) rather than shrinking between calls, as servers built on
tcmalloc or jemalloc do. Set ``KETCH_MALLOC_TUNING=0`` to keep glibc's defaults; a
``GLIBC_TUNABLES`` setting of the malloc thresholds is left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Final

__all__ = ["MMAP_THRESHOLD_BYTES", "TRIM_THRESHOLD_BYTES", "TUNING_VARIABLE", "tune_allocator"]

TUNING_VARIABLE: Final = "KETCH_MALLOC_TUNING"
MMAP_THRESHOLD_BYTES: Final = 32 * 1024 * 1024
"""Allocations below this come from the heap: glibc's largest allowed value on 64-bit."""
TRIM_THRESHOLD_BYTES: Final = 256 * 1024 * 1024
"""Free memory at the top of a heap kept before any is returned to the kernel."""

_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
_OFF_VALUES: Final = frozenset({"0", "false", "no", "off"})


def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (``mallopt`` elsewhere differs or is a stub)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc defines it
    except (OSError, AttributeError):
        return None
    return libc


def tune_allocator() -> str:
    """Fix glibc's mmap and trim thresholds for this process; a sentence saying what was done.

    Call it once, early, in a process that serves a model. It never raises: where
    the tuning does not apply (not glibc, switched off, chosen by ``GLIBC_TUNABLES``)
    the sentence says why nothing changed.
    """
    if os.environ.get(TUNING_VARIABLE, "").strip().lower() in _OFF_VALUES:
        return f"malloc tuning off ({TUNING_VARIABLE}); glibc's defaults apply"
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return "malloc tuning left to GLIBC_TUNABLES"
    libc = _glibc()
    if libc is None:
        return "malloc tuning skipped: the C library is not glibc"
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    applied &= mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    if not applied:
        return "malloc tuning refused by glibc; its defaults apply"
    return (
        f"malloc: mmap threshold {MMAP_THRESHOLD_BYTES >> 20} MiB, "
        f"trim threshold {TRIM_THRESHOLD_BYTES >> 20} MiB ({TUNING_VARIABLE}=0 to keep defaults)"
    )
