"""HTTP errors the gateway answers with: a status and ``{"error": "..."}`` naming the problem."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "ApiError",
    "BadGateway",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "GatewayTimeout",
    "InvalidValue",
    "Location",
    "NotFound",
    "PayloadTooLarge",
    "RequestTimeout",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "UnprocessableContent",
    "UnsupportedMediaType",
    "format_location",
    "status_for_wrapper_code",
]

Location = tuple[str | int, ...]
"""Where a value is in a document: keys and indexes, outermost first."""


def format_location(location: Location) -> str:
    """``inputs[0].data`` for ``("inputs", 0, "data")``; empty for the document itself."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class ApiError(Exception):
    """An error answered to the caller as ``status`` with ``{"error": message}``."""

    status = 500

    def __init__(self, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})


class BadRequest(ApiError):
    """The request is malformed or does not fit the model (400)."""

    status = 400


class InvalidValue(BadRequest):
    """A value of the request that does not fit (400), and where it is, as data.

    Code that converts values knows where a problem is within what it was given
    (a row's index, an input's name); the route that read the body knows which
    field held it, and says so with :meth:`within`.
    """

    def __init__(self, problem: str, location: Location = ()) -> None:
        where = format_location(location)
        super().__init__(f"{where}: {problem}" if where else problem)
        self.problem = problem
        self.location = location

    def within(self, *outer: str | int) -> InvalidValue:
        """The same problem, located inside ``outer`` (such as the body's field)."""
        return InvalidValue(self.problem, (*outer, *self.location))


class Unauthorized(ApiError):
    """No credentials were sent (401)."""

    status = 401


class Forbidden(ApiError):
    """The credentials are wrong, or the API is disabled (403)."""

    status = 403


class NotFound(ApiError):
    """No such app, model or version (404)."""

    status = 404


class Conflict(ApiError):
    """The change contradicts the current state, such as removing a linked model (409)."""

    status = 409


class RequestTimeout(ApiError):
    """The request's body did not arrive in time (408)."""

    status = 408


class PayloadTooLarge(ApiError):
    """The body is over the configured limit (413)."""

    status = 413


class UnsupportedMediaType(ApiError):
    """The body's Content-Type or Content-Encoding is not one the endpoint takes (415)."""

    status = 415


class UnprocessableContent(ApiError):
    """What the request names cannot be used, such as a model its wrapper cannot load (422)."""

    status = 422


class TooManyRequests(ApiError):
    """The client must wait before asking again: ``Retry-After`` says how long (429)."""

    status = 429


class BadGateway(ApiError):
    """A wrapper failed in a way that is not the request's fault (502).

    ``detail``, when given, is the wrapper's own message for a model call: it may name
    exceptions and values of the model's process, which are the operator's business,
    so it goes to the log, not to the caller. Without it, ``message`` is all there is
    (an admin add that failed answers the wrapper's start error to the admin).
    """

    status = 502

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


class ServiceUnavailable(ApiError):
    """No replica can answer now (503)."""

    status = 503


class GatewayTimeout(ApiError):
    """The model did not answer within its time limit (504)."""

    status = 504


_STATUS_BY_WRAPPER_CODE = {
    "INVALID_ARGUMENT": BadRequest,
    "NOT_FOUND": NotFound,
    "UNAVAILABLE": ServiceUnavailable,
    "DEADLINE_EXCEEDED": GatewayTimeout,
}


def status_for_wrapper_code(code: str) -> type[ApiError]:
    """The HTTP error for a wrapper's gRPC status; INTERNAL and the rest are 502s."""
    return _STATUS_BY_WRAPPER_CODE.get(code, BadGateway)
