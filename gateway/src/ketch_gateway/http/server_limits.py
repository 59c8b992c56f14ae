"""What one client may hold of the server: header bytes, time to send, connections.

uvicorn's httptools protocol has no limit on a request's head, no timeout for a
request that arrives slowly (or never), and lets connections grow until the
process runs out of descriptors, at which point every client is locked out.
:func:`limited_protocol` adds the three to it:

- a request line and headers over ``max_header_bytes`` get 431 and the connection
  is closed;
- a request whose head and body have not arrived ``read_timeout_s`` after it began
  (or after the connection opened) gets 408 and the connection is closed; an idle
  keep-alive connection is closed after ``keep_alive_timeout_s`` (uvicorn's own);
- past ``max_connections`` open connections, a new one gets 503 with
  ``Retry-After`` and is closed at once, so the process always has descriptors
  left for the wrappers, the store and the clients already connected.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
from typing import Any, ClassVar, Final

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ketch_gateway.control.security_config import ServerLimits

__all__ = ["DESCRIPTOR_RESERVE", "connection_cap", "limited_protocol"]

DESCRIPTOR_RESERVE: Final = 64
"""Descriptors kept free beyond those open when the gateway starts serving."""

_REASONS: Final = {
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


def connection_cap(limits: ServerLimits) -> int:
    """The most connections to hold: the configured number, never past what descriptors allow.

    What descriptors allow is the process's limit less those already open (the
    listening socket, the wrappers' channels, the store, logs) and a reserve.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    available = soft - len(os.listdir("/proc/self/fd")) - DESCRIPTOR_RESERVE
    allowed = max(available, 1)
    return allowed if limits.max_connections is None else min(limits.max_connections, allowed)


class _HeadTooLarge(Exception):
    """The request line and headers passed the limit."""


class _LimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head limit, a read timeout and a connection cap."""

    limits: ClassVar[ServerLimits]
    max_connections: ClassVar[int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._head_too_large = False
        self._read_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._awaiting_body = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Count the connection; refuse it past the cap, else start the clock on its request."""
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._refuse(503, "the gateway holds as many connections as it may; try again")
            return
        self._start_read_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock, then let uvicorn clean up."""
        self._stop_read_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse what arrived; 431 when the head passes its limit (uvicorn's 400 otherwise)."""
        if self._refused:
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            if self._head_too_large:
                limit = self.limits.max_header_bytes
                self._refuse(431, f"the request line and headers are over {limit} bytes")
                return
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")

    def on_message_begin(self) -> None:
        """A request starts: its head is counted afresh and the clock runs until it is in."""
        super().on_message_begin()
        self._head_bytes = 0
        self._start_read_timer()

    def on_url(self, url: bytes) -> None:
        """Count the target against the head's limit."""
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count a header against the head's limit."""
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """The head is in; the clock runs on until the body is."""
        self._awaiting_body = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The request is in: stop its clock."""
        self._awaiting_body = False
        self._stop_read_timer()
        super().on_message_complete()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.limits.max_header_bytes:
            self._head_too_large = True
            raise _HeadTooLarge

    def _start_read_timer(self) -> None:
        if self._read_timer is None:
            self._read_timer = self.loop.call_later(
                self.limits.read_timeout_s, self._read_timed_out
            )

    def _stop_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        cycle = self.cycle
        if self._awaiting_body and cycle is not None:  # the app is waiting for the body
            if cycle.response_started:  # and has answered already: nothing more to say
                self._refused = True
                self.transport.close()
                return
            cycle.disconnected = True
            cycle.message_event.set()
        self._refuse(
            408, f"the request did not arrive within {self.limits.read_timeout_s:g} seconds"
        )

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` with ``{"error": message}`` and close the connection."""
        self._refused = True
        self._stop_read_timer()
        if self.transport.is_closing():
            return
        body = json.dumps({"error": message}).encode()
        head = [
            f"HTTP/1.1 {status} {_REASONS[status]}",
            "content-type: application/json",
            f"content-length: {len(body)}",
            "connection: close",
        ]
        if status == 503:
            head.append("retry-after: 1")
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        self.transport.close()


def limited_protocol(limits: ServerLimits, max_connections: int) -> type[HttpToolsProtocol]:
    """Uvicorn's httptools protocol class, held to ``limits`` and ``max_connections``."""
    return type(
        "LimitedHttpToolsProtocol",
        (_LimitedProtocol,),
        {"limits": limits, "max_connections": max_connections},
    )
