"""The gateway's settings for its public face: connection limits, CORS, TLS, API keys.

Each ``read_*`` function reads one table of ``[gateway]`` (or one key of an app)
with the same rules and errors as the rest of the configuration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ketch_gateway.control.config_reader import Reader

__all__ = [
    "DEFAULT_USER_STATE_TTL_S",
    "LIMIT_KEYS",
    "CorsConfig",
    "ServerLimits",
    "TlsConfig",
    "WrapperTlsConfig",
    "read_api_keys",
    "read_cors",
    "read_server_limits",
    "read_tls",
    "read_wrapper_tls",
]

DEFAULT_USER_STATE_TTL_S: Final = 30 * 24 * 3600.0
"""Per-user policy state untouched by feedback for this long is forgotten (30 days)."""
LIMIT_KEYS: Final = frozenset(
    {"max_header_bytes", "read_timeout_s", "keep_alive_timeout_s", "max_connections"}
)


@dataclass(frozen=True)
class ServerLimits:
    """What one client may hold of the server: header bytes, time, connections.

    ``read_timeout_s`` bounds how long a request's head and body may take to arrive
    (a connection that sends nothing counts too); ``keep_alive_timeout_s`` how long an
    idle connection is kept between requests. ``max_connections`` None means the
    process's descriptor limit less a reserve for the wrappers, the store and logs.
    """

    max_header_bytes: int = 16 * 1024
    read_timeout_s: float = 10.0
    keep_alive_timeout_s: float = 5.0
    max_connections: int | None = None


@dataclass(frozen=True)
class CorsConfig:
    """Cross-origin requests that browsers may make: off unless origins are listed."""

    allow_origins: tuple[str, ...]
    allow_credentials: bool = False
    max_age_s: int = 600


@dataclass(frozen=True)
class TlsConfig:
    """HTTPS for the gateway; with ``client_ca``, clients must show a certificate it signed."""

    certificate: Path
    key: Path
    client_ca: Path | None = None


@dataclass(frozen=True)
class WrapperTlsConfig:
    """TLS for the gRPC calls to wrappers at ``addresses`` (those on other hosts).

    ``ca`` verifies the wrappers' certificates (None: the system's roots);
    ``certificate`` and ``key`` are the gateway's own, for wrappers that require
    client certificates (mutual TLS); ``server_name`` overrides the name checked
    against the wrappers' certificates.
    """

    ca: Path | None = None
    certificate: Path | None = None
    key: Path | None = None
    server_name: str | None = None


def _file(reader: Reader, key: str, base: Path) -> Path:
    path = Path(reader.string(key)).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise reader.error(key, f"no file at {str(path)!r}")
    return path


def _optional_file(reader: Reader, key: str, base: Path) -> Path | None:
    return _file(reader, key, base) if key in reader.data else None


def read_server_limits(reader: Reader) -> ServerLimits:
    """The connection limits among ``[gateway]``'s keys."""
    return ServerLimits(
        max_header_bytes=reader.integer("max_header_bytes", 16 * 1024, minimum=1024),
        read_timeout_s=reader.number("read_timeout_s", 10.0, minimum=0),
        keep_alive_timeout_s=reader.number("keep_alive_timeout_s", 5.0, minimum=0),
        max_connections=reader.optional_integer("max_connections", minimum=1),
    )


def read_cors(reader: Reader) -> CorsConfig:
    """A ``[gateway.cors]`` table."""
    reader.check_keys({"allow_origins", "allow_credentials", "max_age_s"}, {"allow_origins"})
    origins = reader.strings("allow_origins")
    credentials = reader.boolean("allow_credentials", False)
    if credentials and "*" in origins:
        raise reader.error(
            "allow_credentials", 'cannot be true with the origin "*": list the origins'
        )
    return CorsConfig(origins, credentials, reader.integer("max_age_s", 600, minimum=0))


def read_tls(reader: Reader, base: Path) -> TlsConfig:
    """A ``[gateway.tls]`` table; files relative to ``base``."""
    reader.check_keys({"certificate", "key", "client_ca"}, {"certificate", "key"})
    return TlsConfig(
        _file(reader, "certificate", base),
        _file(reader, "key", base),
        _optional_file(reader, "client_ca", base),
    )


def read_wrapper_tls(reader: Reader, base: Path) -> WrapperTlsConfig:
    """A ``[gateway.wrapper_tls]`` table; files relative to ``base``."""
    reader.check_keys({"ca", "certificate", "key", "server_name"})
    certificate = _optional_file(reader, "certificate", base)
    key = _optional_file(reader, "key", base)
    if (certificate is None) != (key is None):
        raise reader.error(
            "key" if key is None else "certificate",
            "missing (a client certificate needs both certificate and key)",
        )
    return WrapperTlsConfig(
        _optional_file(reader, "ca", base), certificate, key, reader.optional_string("server_name")
    )


def read_api_keys(reader: Reader) -> tuple[str, ...]:
    """An app's ``api_keys`` and the comma-separated keys of its ``api_keys_env`` variable."""
    keys = list(reader.strings("api_keys", ()))
    variable = reader.optional_string("api_keys_env")
    if variable is not None:
        found = [key.strip() for key in os.environ.get(variable, "").split(",") if key.strip()]
        if not found:
            raise reader.error("api_keys_env", f"the variable {variable} holds no keys")
        keys.extend(found)
    return tuple(keys)
