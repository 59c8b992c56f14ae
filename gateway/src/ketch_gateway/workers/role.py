"""What the parent of ``--workers N`` tells each worker it starts, in one environment variable."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = ["WORKER_VARIABLE", "ParentWrappers", "WorkerRole"]

WORKER_VARIABLE: Final = "KETCH_GATEWAY_WORKER"

ParentWrappers = Mapping[str, Mapping[str, tuple[str, ...]]]
"""Addresses of the parent's managed wrappers, by model name, then version."""


@dataclass(frozen=True)
class WorkerRole:
    """One worker's part: its index, its parent, its socket, the parent's wrappers.

    :param listen_fd: the listening socket inherited from the parent (``shared``), or
        None when the worker binds its own with ``SO_REUSEPORT`` (``reuseport``).
    :param restarts: workers the parent has restarted so far (a metric of every worker).
    """

    index: int
    parent: int
    listen_fd: int | None = None
    wrappers: ParentWrappers = field(default_factory=dict)
    restarts: int = 0

    def encoded(self) -> str:
        """The value of :data:`WORKER_VARIABLE` that :meth:`from_environment` reads back."""
        return json.dumps(
            {
                "index": self.index,
                "parent": self.parent,
                "listen_fd": self.listen_fd,
                "wrappers": {m: dict(v) for m, v in self.wrappers.items()},
                "restarts": self.restarts,
            }
        )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> WorkerRole | None:
        """The part of this process when its parent started it as a worker; None otherwise."""
        text = environ.get(WORKER_VARIABLE)
        if not text:
            return None
        data = json.loads(text)
        wrappers = {
            model: {version: tuple(addresses) for version, addresses in versions.items()}
            for model, versions in data["wrappers"].items()
        }
        return cls(data["index"], data["parent"], data["listen_fd"], wrappers, data["restarts"])
