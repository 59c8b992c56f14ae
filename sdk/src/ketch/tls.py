"""TLS for the gRPC link between a gateway and wrappers on other hosts.

A wrapper serves TLS with its certificate and key (:class:`ServerTls`); given a
client CA it also requires every caller to show a certificate that CA signed
(mutual TLS). A caller verifies the wrapper against a CA, and may show its own
certificate (:class:`ClientTls`). Files are PEM; they are read when the
credentials are made, so a missing or unreadable one is an error at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

__all__ = ["ClientTls", "ServerTls"]


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise OSError(f"cannot read the {what} {str(path)!r}: {error.strerror}") from None


def _read_optional(path: Path | None, what: str) -> bytes | None:
    return None if path is None else _read(path, what)


@dataclass(frozen=True)
class ServerTls:
    """A wrapper's certificate and key; with ``client_ca``, callers need a certificate too."""

    certificate: Path
    key: Path
    client_ca: Path | None = None

    def credentials(self) -> grpc.ServerCredentials:
        """The gRPC server credentials."""
        certificate = _read(self.certificate, "TLS certificate")
        key = _read(self.key, "TLS key")
        return grpc.ssl_server_credentials(
            [(key, certificate)],
            root_certificates=_read_optional(self.client_ca, "client CA"),
            require_client_auth=self.client_ca is not None,
        )


@dataclass(frozen=True)
class ClientTls:
    """How a caller checks a wrapper (``ca``; None: the system's roots) and proves itself.

    ``certificate`` and ``key`` are the caller's own, for wrappers that require
    client certificates; ``server_name`` is checked against the wrapper's
    certificate instead of the address's host.
    """

    ca: Path | None = None
    certificate: Path | None = None
    key: Path | None = None
    server_name: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        """The gRPC channel credentials."""
        return grpc.ssl_channel_credentials(
            root_certificates=_read_optional(self.ca, "CA certificate"),
            private_key=_read_optional(self.key, "TLS key"),
            certificate_chain=_read_optional(self.certificate, "TLS certificate"),
        )

    def channel_options(self) -> list[tuple[str, str]]:
        """Channel options: the name to check the wrapper's certificate against, if given."""
        if self.server_name is None:
            return []
        return [("grpc.ssl_target_name_override", self.server_name)]
