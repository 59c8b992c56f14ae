"""The HTTP ceiling: a Starlette endpoint that reads the body and answers a constant.

Run under uvicorn (``python bare_app.py uvicorn PORT SIZE``, with uvloop and httptools)
or granian (``python bare_app.py granian PORT SIZE``, its Rust HTTP server): no Python
web server can answer a request with less work, so it frames what a gateway can reach.
"""

from __future__ import annotations

import os
import sys

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

RESPONSE_SIZE = int(os.environ.get("BARE_RESPONSE_SIZE", "100"))
CONSTANT = b'{"outputs":"' + b"x" * max(RESPONSE_SIZE - 14, 0) + b'"}'


async def infer(request: Request) -> Response:
    """Read the body, answer the constant."""
    await request.body()
    return Response(CONSTANT, media_type="application/json")


app = Starlette(routes=[Route("/v2/models/digits/infer", infer, methods=["POST"])])


def main() -> int:
    """Serve ``app`` with the server named on the command line."""
    server, port = sys.argv[1], int(sys.argv[2])
    if server == "uvicorn":
        import uvicorn

        uvicorn.run(
            app,
            host="127.0.0.1",
            port=port,
            loop="uvloop",
            http="httptools",
            log_level="warning",
            access_log=False,
        )
    else:
        from granian.constants import Interfaces, Loops
        from granian.server import Server

        Server(
            "bare_app:app",
            address="127.0.0.1",
            port=port,
            interface=Interfaces.ASGI,
            loop=Loops.uvloop,
            workers=1,
            log_enabled=False,
        ).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
