"""``ketch probe``: the container images' health check, against real servers on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sdk_test_plugins import REFERENCE_PLUGIN, SLOW_PLUGIN
from test_wrapper_process import read_prefixed_line

from ketch import WrapperProcess, start_wrapper
from ketch.process import LISTENING_PREFIX, serve_command


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ketch", "probe", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def wrapper(softmax_path: Path) -> Iterator[WrapperProcess]:
    with start_wrapper(REFERENCE_PLUGIN, softmax_path, name="digits") as process:
        yield process


def test_a_ready_wrapper_is_healthy(wrapper: WrapperProcess) -> None:
    result = probe("grpc", wrapper.address)
    assert result.returncode == 0, result.stderr
    assert f"healthy: {wrapper.address}" in result.stdout
    by_service = probe("grpc", wrapper.address, "--service", "inference.GRPCInferenceService")
    assert by_service.returncode == 0, by_service.stderr


def test_an_unknown_health_service_is_unhealthy(wrapper: WrapperProcess) -> None:
    result = probe("grpc", wrapper.address, "--service", "no.such.Service")
    assert result.returncode == 1
    assert "NOT_FOUND" in result.stderr


def test_a_wrapper_still_loading_is_unhealthy(
    softmax_path: Path, test_plugins_env: dict[str, str]
) -> None:
    command = serve_command(SLOW_PLUGIN, softmax_path, options={"load_delay": "30"})
    env = {**os.environ, **test_plugins_env}
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:
        try:
            address = str(read_prefixed_line(process, LISTENING_PREFIX)["address"])
            result = probe("grpc", address)
        finally:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert result.returncode == 1
    assert "the server is NOT_SERVING" in result.stderr


def test_nothing_listening_is_unhealthy(unused_port: int) -> None:
    result = probe("grpc", f"127.0.0.1:{unused_port}", "--timeout", "1")
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stderr
    answer = probe("http", f"http://127.0.0.1:{unused_port}/v2/health/ready", "--timeout", "1")
    assert answer.returncode == 1
    assert "refused" in answer.stderr


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/v2/health/ready" else 503)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_probe_wants_a_2xx(http_server: str) -> None:
    assert probe("http", f"{http_server}/v2/health/ready").returncode == 0
    unready = probe("http", f"{http_server}/v2/health/other")
    assert unready.returncode == 1
    assert "HTTP 503" in unready.stderr


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
