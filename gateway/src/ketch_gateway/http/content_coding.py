"""HTTP content codings: compressed request bodies in, compressed responses out.

Requests may say ``Content-Encoding: gzip`` or ``deflate`` (as tritonclient's
``request_compression_algorithm`` does); :class:`Inflater` decompresses them while
counting, so that the body limit applies to the decompressed size and a small
"zip bomb" is refused after at most the limit's worth of output, never inflated
whole. Responses are compressed when the request's ``Accept-Encoding`` asks for
gzip or deflate (:class:`ResponseCompression`).

Starlette's GZipMiddleware compresses responses with gzip only; the gateway also
answers deflate (as Triton does) and needs the request side, so both are here.
"""

from __future__ import annotations

import zlib
from typing import Final

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ketch_gateway.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

__all__ = [
    "MINIMUM_COMPRESSED_BYTES",
    "REQUEST_CODINGS",
    "Inflater",
    "ResponseCompression",
    "preferred_coding",
    "request_coding",
]

REQUEST_CODINGS: Final = ("gzip", "deflate", "identity")
"""The request content codings the gateway reads."""
MINIMUM_COMPRESSED_BYTES: Final = 512
"""Responses smaller than this are sent as they are: compressing them gains nothing."""
_GZIP_WINDOW: Final = 16 + zlib.MAX_WBITS
_ALIASES: Final = {"x-gzip": "gzip", "": "identity"}


def request_coding(header: str | None) -> str:
    """The request's content coding; 415 naming the supported ones for any other."""
    coding = _ALIASES.get((header or "").strip().lower(), (header or "").strip().lower())
    if coding not in REQUEST_CODINGS:
        raise UnsupportedMediaType(
            f"Content-Encoding: {header!r} is not supported; send gzip, deflate or identity"
        )
    return coding


def _looks_like_zlib(start: bytes) -> bool:
    """Whether a deflate body has the zlib wrapper RFC 9110 asks for (some send it raw)."""
    return len(start) >= 2 and start[0] & 0x0F == 8 and (start[0] << 8 | start[1]) % 31 == 0


class Inflater:
    """Decompresses one request body within ``limit`` bytes of output.

    Feed it the body's chunks as they arrive; PayloadTooLarge as soon as the output
    would pass the limit, BadRequest when the data is not valid for the coding.
    """

    def __init__(self, coding: str, limit: int) -> None:
        self.coding = coding
        self.limit = limit
        self.size = 0
        self._inflater: zlib._Decompress | None = None
        self._pending = b""

    def _start(self, chunk: bytes) -> zlib._Decompress:
        if self.coding == "gzip":
            return zlib.decompressobj(_GZIP_WINDOW)
        return zlib.decompressobj(zlib.MAX_WBITS if _looks_like_zlib(chunk) else -zlib.MAX_WBITS)

    def feed(self, chunk: bytes) -> bytes:
        """The decompressed bytes of ``chunk``."""
        if self.coding == "identity":
            return self._count(chunk)
        if self._inflater is None:
            self._pending += chunk
            if len(self._pending) < 2:
                return b""
            chunk, self._pending = self._pending, b""
            self._inflater = self._start(chunk)
        return self._inflate(self._inflater, chunk)

    def finish(self) -> bytes:
        """The rest of the output; BadRequest when the compressed body ends too soon."""
        if self.coding == "identity":
            return b""
        rest = b""
        if self._inflater is None:  # fewer than two bytes arrived
            self._inflater = self._start(self._pending)
            rest = self._inflate(self._inflater, self._pending)
        if not self._inflater.eof:
            raise BadRequest(f"Content-Encoding: {self.coding}: the compressed body is cut short")
        return rest

    def _inflate(self, inflater: zlib._Decompress, chunk: bytes) -> bytes:
        if inflater.eof:
            if chunk:
                raise BadRequest(f"Content-Encoding: {self.coding}: data after the compressed body")
            return b""
        try:
            output = inflater.decompress(chunk, self.limit - self.size + 1)
        except zlib.error as error:
            raise BadRequest(
                f"Content-Encoding: {self.coding}: the body is not valid {self.coding} data "
                f"({error})"
            ) from None
        if inflater.unconsumed_tail:
            raise self._too_large()
        if inflater.unused_data:
            raise BadRequest(f"Content-Encoding: {self.coding}: data after the compressed body")
        return self._count(output)

    def _count(self, output: bytes) -> bytes:
        self.size += len(output)
        if self.size > self.limit:
            raise self._too_large()
        return output

    def _too_large(self) -> PayloadTooLarge:
        if self.coding == "identity":
            return PayloadTooLarge(f"the body is over the limit of {self.limit} bytes")
        return PayloadTooLarge(
            f"the body decompresses to more than the limit of {self.limit} bytes"
        )


def _quality(parameters: list[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def preferred_coding(accept_encoding: str | None) -> str | None:
    """Gzip or deflate, whichever ``Accept-Encoding`` ranks higher (gzip on a tie), or None."""
    if not accept_encoding:
        return None
    ranks: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, *parameters = item.split(";")
        ranks[name.strip().lower()] = _quality(parameters)
    wildcard = ranks.get("*", 0.0)
    best = max(
        ("gzip", "deflate"), key=lambda coding: (ranks.get(coding, wildcard), coding == "gzip")
    )
    return best if ranks.get(best, wildcard) > 0 else None


def _compress(body: bytes, coding: str) -> bytes:
    window = _GZIP_WINDOW if coding == "gzip" else zlib.MAX_WBITS
    compressor = zlib.compressobj(6, zlib.DEFLATED, window)
    return compressor.compress(body) + compressor.flush()


class ResponseCompression:
    """ASGI middleware: compress responses for clients whose Accept-Encoding asks for it."""

    def __init__(self, app: ASGIApp, minimum_size: int = MINIMUM_COMPRESSED_BYTES) -> None:
        self.app = app
        self.minimum_size = minimum_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve ``scope``, compressing the answer's body when it is worth it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        coding = preferred_coding(Headers(scope=scope).get("accept-encoding"))
        if coding is None:
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def send_compressed(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            headers = MutableHeaders(raw=list(start["headers"]))
            if len(body) >= self.minimum_size and "content-encoding" not in headers:
                body = _compress(body, coding)
                headers["content-encoding"] = coding
                headers["content-length"] = str(len(body))
                headers.add_vary_header("Accept-Encoding")
            await send({**start, "headers": headers.raw})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, send_compressed)
