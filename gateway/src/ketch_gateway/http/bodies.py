"""Reading bodies within a size limit, parsing JSON, and answering JSON.

A body is read only when its ``Content-Type`` is one the endpoint takes (415
otherwise): a web page can send ``text/plain`` or a form to any address without
asking, but not ``application/json``, so requiring it keeps other sites from
writing through a visitor's browser. ``Content-Encoding: gzip`` and ``deflate``
bodies are decompressed, and the size limit applies to what they decompress to.

Request bodies are parsed with orjson: on a one-digit OIP request it takes 1.4 us
where the standard library takes 13 us, a few percent of the gateway's time per
request. Like the JSON standard, it refuses ``NaN`` and ``Infinity`` literals.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ketch_gateway.errors import (
    BadRequest,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)
from ketch_gateway.http.content_coding import Inflater, request_coding

__all__ = [
    "INFER_BODY",
    "JSON_BODY",
    "BodyTypes",
    "json_response",
    "parse_json",
    "read_body",
    "read_json_object",
]


@dataclass(frozen=True)
class BodyTypes:
    """The media types an endpoint reads, and whether a body may come without one."""

    accepted: tuple[str, ...]
    untyped_allowed: bool = False

    def check(self, content_type: str | None) -> None:
        """UnsupportedMediaType (415) unless ``content_type`` is accepted."""
        media = (content_type or "").partition(";")[0].strip().lower()
        if not media:
            if self.untyped_allowed:
                return
            raise UnsupportedMediaType(f"Content-Type: missing; send {' or '.join(self.accepted)}")
        if media not in self.accepted:
            raise UnsupportedMediaType(
                f"Content-Type: {media!r} is not accepted here; send {' or '.join(self.accepted)}"
            )


JSON_BODY: Final = BodyTypes(("application/json",))
"""The Apps and admin APIs: JSON, said so."""
INFER_BODY: Final = BodyTypes(("application/json", "application/octet-stream"), True)
"""The OIP infer endpoint: JSON or binary tensors; Open Inference Protocol clients such
as tritonclient send no Content-Type at all, and inference changes no state."""


async def read_body(request: Request, limit: int, types: BodyTypes = JSON_BODY) -> bytes:
    """The request body, decompressed; 413 as soon as it passes ``limit`` bytes.

    415 for a Content-Type outside ``types`` or an unknown Content-Encoding.
    """
    types.check(request.headers.get("content-type"))
    inflater = Inflater(request_coding(request.headers.get("content-encoding")), limit)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit}")
    chunks = []
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
            chunks.append(inflater.feed(chunk))
    except ClientDisconnect:  # gone, or cut off by the read timeout: no one hears the answer
        raise RequestTimeout("the body did not arrive") from None
    chunks.append(inflater.finish())
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
