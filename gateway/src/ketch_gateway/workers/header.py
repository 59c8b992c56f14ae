"""``Ketch-Worker``: which worker of ``--workers N`` answered, on every response."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["WORKER_HEADER", "WorkerHeader"]

WORKER_HEADER = "ketch-worker"


class WorkerHeader:
    """ASGI middleware that adds the worker's index to each HTTP response's headers.

    For operators and tests: to see that requests reach every worker, and which one
    answered a request that went wrong.
    """

    def __init__(self, app: ASGIApp, index: int) -> None:
        self.app = app
        self.header = (WORKER_HEADER.encode(), str(index).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the header to the response's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), self.header]
            await send(message)

        await self.app(scope, receive, send_with_header)
