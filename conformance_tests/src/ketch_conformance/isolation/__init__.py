"""Running a plugin's hooks in a worker process, so that a crash or a hang fails one check.

See :class:`IsolatedSubject`, the in-process subject the suite checks, and
:mod:`ketch_conformance.isolation.worker`, the process it talks to.
"""

from ketch_conformance.isolation.client import (
    HookWorker,
    IsolatedSubject,
    RemoteModel,
    WorkerHooks,
    worker_environment,
)

__all__ = ["HookWorker", "IsolatedSubject", "RemoteModel", "WorkerHooks", "worker_environment"]
