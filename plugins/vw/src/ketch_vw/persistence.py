"""Saving files so that a crash never leaves half of one, and saving on a timer.

Every save writes a temporary file in the destination's folder, flushes it to disk,
then renames it over the destination: a reader (or a restarted wrapper) sees the
old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["PeriodicSaver", "replace_atomically", "write_text_atomically"]

_log = logging.getLogger(__name__)


def _fsync(path: Path, flags: int = os.O_RDONLY) -> None:
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _mode_for(destination: Path) -> int:
    """The destination's permissions if it exists, else what a new file gets under the umask."""
    try:
        return stat.S_IMODE(destination.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def replace_atomically(destination: Path, write: Callable[[Path], object]) -> None:
    """Have ``write`` fill a temporary file, sync it, and rename it over ``destination``."""
    descriptor, temporary_name = tempfile.mkstemp(
        dir=destination.parent, prefix=f".{destination.name}.", suffix=".tmp"
    )
    os.close(descriptor)
    temporary = Path(temporary_name)
    try:
        write(temporary)
        os.chmod(temporary, _mode_for(destination))
        _fsync(temporary)
        os.replace(temporary, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    with contextlib.suppress(OSError):  # not every file system syncs folders
        _fsync(destination.parent, os.O_RDONLY | os.O_DIRECTORY)


def write_text_atomically(destination: Path, text: str) -> None:
    """Write ``text`` to ``destination`` (UTF-8) through :func:`replace_atomically`."""
    replace_atomically(destination, lambda path: path.write_text(text, encoding="utf-8"))


class PeriodicSaver:
    """A daemon thread that calls ``save`` every ``interval`` seconds until closed.

    ``save`` decides whether there is anything to save; an exception is logged and
    the thread carries on, so that a full disk does not stop later saves.
    """

    def __init__(self, save: Callable[[], object], interval: float, name: str) -> None:
        self._save = save
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._save()
            except Exception:
                _log.exception("saving the model on its timer failed; will try again")

    def close(self) -> None:
        """Stop the thread (and wait for a save in progress to finish)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
