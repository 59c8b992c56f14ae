"""Per-app API keys: ``Authorization: Bearer <key>`` on the Apps API, when an app has keys."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from starlette.requests import Request

from ketch_gateway.errors import Forbidden, Unauthorized

__all__ = ["require_api_key"]

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def require_api_key(request: Request, keys: Sequence[str], app: str) -> None:
    """Nothing when ``keys`` is empty or the request bears one of them; else 401 or 403.

    Every key is compared in constant time, so the answer's timing does not tell
    how much of a guess was right.
    """
    if not keys:
        return
    header = request.headers.get("authorization")
    if header is None:
        raise Unauthorized(
            f"app {app!r} needs an API key: send Authorization: Bearer <key>", _CHALLENGE
        )
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Unauthorized("expected Authorization: Bearer <key>", _CHALLENGE)
    candidate = given.strip().encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(candidate, key.encode())
    if not matched:
        raise Forbidden(f"wrong API key for app {app!r}")
