"""What a process holds: threads, open files, resident memory, heap and device memory.

Counts come from ``/proc`` (Linux). A process can also report on itself what no
one outside sees: the bytes its C allocator has handed out (glibc's ``mallinfo2``)
and the device memory its framework reports (PyTorch's CUDA allocator,
TensorFlow's GPU allocator), when those are loaded and in use.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import cast

__all__ = ["Usage", "own_usage", "usage_of"]


@dataclass(frozen=True)
class Usage:
    """One look at a process.

    :param threads: how many threads it runs.
    :param open_files: how many file descriptors it holds open.
    :param rss: its resident memory, in bytes.
    :param heap: bytes its C allocator has handed out and not taken back (None: unknown).
    :param device: bytes its framework holds on accelerators (None: none in use, or unknown).
    """

    threads: int
    open_files: int
    rss: int
    heap: int | None = None
    device: int | None = None


def usage_of(pid: int) -> Usage:
    """Threads, open files and resident memory of process ``pid``, from ``/proc``.

    :raises OSError: there is no ``/proc`` entry for it (not Linux, or it has exited).
    """
    proc = Path("/proc", str(pid))
    threads = rss = 0
    for line in (proc / "status").read_text(encoding="ascii").splitlines():
        if line.startswith("Threads:"):
            threads = int(line.split()[1])
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return Usage(threads, len(os.listdir(proc / "fd")), rss)


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


@cache
def _mallinfo2() -> Callable[[], _MallInfo2] | None:
    try:
        function = ctypes.CDLL(None).mallinfo2
    except (AttributeError, OSError):
        return None
    function.restype = _MallInfo2
    function.argtypes = []
    return cast(Callable[[], _MallInfo2], function)


def heap_in_use() -> int | None:
    """Bytes glibc's malloc has handed out (small chunks and mmapped blocks), or None."""
    function = _mallinfo2()
    if function is None:
        return None
    info = function()
    return int(info.uordblks + info.hblkhd)


def _torch_device_memory() -> int | None:
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return None
    devices = range(torch.cuda.device_count())
    return sum(int(torch.cuda.memory_allocated(index)) for index in devices)


def _tensorflow_device_memory() -> int | None:
    tensorflow = sys.modules.get("tensorflow")
    if tensorflow is None:
        return None
    devices = tensorflow.config.list_logical_devices("GPU")
    if not devices:
        return None
    return sum(
        int(tensorflow.config.experimental.get_memory_info(device.name)["current"])
        for device in devices
    )


def device_memory() -> int | None:
    """Bytes the loaded framework holds on its accelerators, or None when it reports none."""
    total = None
    for reader in (_torch_device_memory, _tensorflow_device_memory):
        try:
            found = reader()
        except Exception:  # a framework half set up has nothing to report
            found = None
        if found is not None:
            total = (total or 0) + found
    return total


def own_usage() -> Usage:
    """The calling process: ``/proc``, its heap and its device memory."""
    seen = usage_of(os.getpid())
    return Usage(seen.threads, seen.open_files, seen.rss, heap_in_use(), device_memory())
