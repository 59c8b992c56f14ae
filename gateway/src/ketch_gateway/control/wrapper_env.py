"""The ``[wrappers]`` table: the environment managed wrappers get, and how many start at once.

The gateway's environment holds its secrets (``KETCH_ADMIN_TOKEN``, a store's
password, cloud credentials), and a wrapper runs whatever model file it was given,
so a wrapper does not inherit it. It gets an allow-list: what Python, the C
library, the frameworks' thread and device settings and Ketch itself read
(:data:`PASSED_VARIABLES`, :data:`PASSED_PREFIXES`), plus the variables that
``env`` names (``NAME``, or ``PREFIX*`` for every variable that starts so).
``KETCH_ADMIN_TOKEN`` is never passed on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ketch_gateway.control.config_reader import Reader

__all__ = [
    "PASSED_PREFIXES",
    "PASSED_VARIABLES",
    "WrapperSettings",
    "read_wrapper_settings",
]

PASSED_VARIABLES: Final = frozenset(
    {
        # the process and the C library
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "TERM",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "TEMP",
        "TMP",
        "LD_LIBRARY_PATH",
        "GLIBC_TUNABLES",
        "MALLOC_ARENA_MAX",
        # Python
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONHASHSEED",
        "PYTHONWARNINGS",
        "PYTHONFAULTHANDLER",
        "PYTHONIOENCODING",
        "PYTHONUTF8",
        "VIRTUAL_ENV",
        # threads and devices
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "CUDA_VISIBLE_DEVICES",
        "CUDA_HOME",
        "HIP_VISIBLE_DEVICES",
        "NVIDIA_VISIBLE_DEVICES",
        "TF_CPP_MIN_LOG_LEVEL",
        "TF_ENABLE_ONEDNN_OPTS",
        "KERAS_BACKEND",
        # Ketch
        "KETCH_DISABLE_PLUGINS",
        "KETCH_EXTRA_PLUGINS",
        "KETCH_MALLOC_TUNING",
        "KETCH_PACING_PREDICT_DELAY",
    }
)
"""Variables every managed wrapper gets from the gateway's environment, when set there."""
PASSED_PREFIXES: Final = ("LC_", "COVERAGE_")
"""Variables starting so are passed on too: locale settings, and coverage.py's own."""
NEVER_PASSED: Final = frozenset({"KETCH_ADMIN_TOKEN"})


def _named(name: str, patterns: tuple[str, ...]) -> bool:
    return any(
        name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern
        for pattern in patterns
    )


@dataclass(frozen=True)
class WrapperSettings:
    """How managed wrappers start.

    ``env`` names more variables to pass on (``NAME``, or ``PREFIX*``); at most
    ``max_starting`` wrappers start at once.
    """

    env: tuple[str, ...] = ()
    max_starting: int = 4

    def environment(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The variables of ``environ`` (the gateway's own by default) a wrapper gets."""
        source = os.environ if environ is None else environ
        return {
            name: value
            for name, value in source.items()
            if name not in NEVER_PASSED
            and (
                name in PASSED_VARIABLES
                or name.startswith(PASSED_PREFIXES)
                or _named(name, self.env)
            )
        }


def read_wrapper_settings(reader: Reader) -> WrapperSettings:
    """The ``[wrappers]`` table."""
    reader.check_keys({"env", "max_starting"})
    names = reader.strings("env", ())
    for index, name in enumerate(names):
        stem = name.removesuffix("*")
        if not stem or "*" in stem or "=" in stem:
            raise reader.error(
                "env", f"item {index}: {name!r} is not a variable name (NAME, or PREFIX*)"
            )
    return WrapperSettings(env=names, max_starting=reader.integer("max_starting", 4, minimum=1))
