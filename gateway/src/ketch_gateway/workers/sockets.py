"""The gateway's listening sockets: one to share between workers, or one per worker.

``shared``: the parent listens and its workers inherit the socket; the kernel gives each
new connection to whichever worker accepts first. ``reuseport``: every worker listens on
its own socket bound with ``SO_REUSEPORT``, and the kernel spreads new connections across
them by a hash of their addresses; the parent holds one more bound socket, not listening,
so that the port (a free one when asked for port 0) stays its own between restarts.
"""

from __future__ import annotations

import socket

__all__ = ["listen", "reserve_port"]

BACKLOG = 2048


def _bound(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def listen(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A non-blocking socket listening on ``host:port`` (0: a free port)."""
    sock = _bound(host, port, reuse_port=reuse_port)
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound with ``SO_REUSEPORT`` and not listening: it holds the port, takes no calls."""
    return _bound(host, port, reuse_port=True)
