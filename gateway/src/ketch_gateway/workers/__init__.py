"""``ketch gateway --workers N``: several gateway processes serving one port.

The parent (:mod:`.pool`) binds the port, starts the configuration's managed wrappers
once (:mod:`.parent_wrappers`), and starts, watches and restarts N workers; each worker
is an ordinary gateway told its part by :class:`~.role.WorkerRole`, that joins the
parent's wrappers as replicas, batches its own requests and shares its state through
the Redis store, like the gateways of a cluster.
"""

from ketch_gateway.workers.pool import run_workers
from ketch_gateway.workers.role import WorkerRole

__all__ = ["WorkerRole", "run_workers"]
