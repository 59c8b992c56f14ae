"""What one client may hold of a real gateway: header bytes, time to send, connections."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from gateway_test_support import ADMIN_TOKEN

from ketch_gateway import GatewayProcess, start_gateway, write_config

WAIT_S = 60.0
"""How long a test waits for the gateway to act (a bound, never the expectation)."""


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = write_config(
        tmp_path_factory.mktemp("limited"),
        f"""
[gateway]
admin_token = "{ADMIN_TOKEN}"
max_header_bytes = 2048
read_timeout_s = 0.5
keep_alive_timeout_s = 0.3
""",
    )
    with start_gateway(config) as gateway:
        yield gateway


def connect(gateway: GatewayProcess) -> socket.socket:
    address = urlparse(gateway.url)
    assert address.hostname is not None
    assert address.port is not None
    connection = socket.create_connection((address.hostname, address.port), timeout=WAIT_S)
    return connection


def read_until_closed(connection: socket.socket) -> bytes:
    """Everything the gateway sends until it closes the connection."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def status_and_error(response: bytes) -> tuple[int, str]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)["error"]


def request(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: gateway", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_head_over_the_limit_is_431(limited: GatewayProcess) -> None:
    with connect(limited) as connection:
        connection.sendall(request("/v2/health/live", "X-Padding: " + "a" * 1500))
        assert connection.recv(65536).startswith(b"HTTP/1.1 200")
    with connect(limited) as connection:
        connection.sendall(request("/v2/health/live", "X-Padding: " + "a" * 4000))
        status, error = status_and_error(read_until_closed(connection))
    assert status == 431
    assert error == "the request line and headers are over 2048 bytes"


def test_a_head_that_never_ends_is_408(limited: GatewayProcess) -> None:
    with connect(limited) as connection:
        connection.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: gateway\r\n")
        status, error = status_and_error(read_until_closed(connection))
    assert status == 408
    assert error == "the request did not arrive within 0.5 seconds"


def test_a_connection_that_sends_nothing_is_closed(limited: GatewayProcess) -> None:
    with connect(limited) as connection:
        status, _ = status_and_error(read_until_closed(connection))
    assert status == 408


def test_a_body_that_never_ends_is_408(limited: GatewayProcess) -> None:
    head = (
        "POST /admin/apps HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: 100\r\n\r\n"
    )
    with connect(limited) as connection:
        connection.sendall(head.encode() + b'{"name": ')
        status, _ = status_and_error(read_until_closed(connection))
    assert status == 408


def test_an_idle_keep_alive_connection_is_closed(limited: GatewayProcess) -> None:
    with connect(limited) as connection:
        connection.sendall(request("/v2/health/live"))
        response = read_until_closed(connection)
    assert response.startswith(b"HTTP/1.1 200")
    assert response.count(b"HTTP/1.1") == 1


def test_connections_past_the_cap_are_refused_with_503(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        "[gateway]\nmax_connections = 3\nread_timeout_s = 600\nkeep_alive_timeout_s = 600\n",
    )
    with start_gateway(config) as gateway:
        held = [connect(gateway) for _ in range(3)]
        for connection in held:  # each is accepted and served: the gateway counts it
            connection.sendall(request("/v2/health/live"))
            assert connection.recv(65536).startswith(b"HTTP/1.1 200")
        with connect(gateway) as refused:
            response = read_until_closed(refused)
        assert response.startswith(b"HTTP/1.1 503")
        assert b"retry-after: 1" in response
        held.pop().close()
        deadline = time.monotonic() + WAIT_S
        while True:  # the gateway notices the closed connection, then serves a new one
            with connect(gateway) as again:
                again.sendall(request("/v2/health/live"))
                if again.recv(65536).startswith(b"HTTP/1.1 200"):
                    break
            assert time.monotonic() < deadline
        for connection in held:
            connection.close()
