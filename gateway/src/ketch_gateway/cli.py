"""``ketch gateway --config FILE``: run the gateway under uvicorn (uvloop, httptools).

The gateway binds its socket itself (``--port 0`` picks a free port) and prints
``KETCH_GATEWAY_READY {"url": ...}`` on standard output once every model's
wrappers are up and it answers requests. SIGTERM or SIGINT stops it, and with it
every wrapper it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import uvicorn
import uvloop

from ketch_gateway.control.config import ConfigError, GatewayConfig, load_config, state_location
from ketch_gateway.control.security_config import TlsConfig
from ketch_gateway.control.supervisor import WrapperStartFailed
from ketch_gateway.gateway import Gateway
from ketch_gateway.http.application import create_app
from ketch_gateway.http.server_limits import connection_cap, limited_protocol

HANDLED_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)

__all__ = ["READY_PREFIX", "add_command", "run_gateway"]

READY_PREFIX: Final = "KETCH_GATEWAY_READY "


def add_command(commands: Any) -> None:
    """Add ``gateway`` to the ``ketch`` command's sub-commands."""
    parser = commands.add_parser(
        "gateway",
        help="run the Ketch gateway (apps, models, Open Inference Protocol over REST)",
        description=__doc__,
    )
    parser.add_argument("--config", required=True, help="the ketch.toml file")
    parser.add_argument("--host", help="address to listen on (overrides the file)")
    parser.add_argument("--port", type=int, help="port to listen on; 0 picks a free one")
    parser.add_argument("--log-level", help="debug, info, warning, error (overrides the file)")
    parser.add_argument(
        "--state", help="the state store: a SQLite file or a redis:// URL (overrides the file)"
    )
    parser.add_argument(
        "--strict-dns",
        action="store_true",
        help="exit (status 2) when a dns: replica address does not resolve at start-up, "
        "instead of waiting, not ready, until it does",
    )
    parser.set_defaults(handler=run_gateway)


class _Server(uvicorn.Server):
    """uvicorn's server, but a SIGTERM or SIGINT ends in a clean exit with status 0.

    uvicorn re-raises the signal after shutting down, so the process would die of it.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Ask for a graceful shutdown on SIGTERM and SIGINT (twice SIGINT: at once)."""
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _tls_options(tls: TlsConfig | None) -> dict[str, Any]:
    """Uvicorn's settings for HTTPS (and client certificates, when a client CA is given)."""
    if tls is None:
        return {}
    options: dict[str, Any] = {"ssl_certfile": str(tls.certificate), "ssl_keyfile": str(tls.key)}
    if tls.client_ca is not None:
        options |= {"ssl_ca_certs": str(tls.client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return options


def run_gateway(args: argparse.Namespace) -> int:
    """Run until SIGTERM; 0 after a clean stop, 1 when start-up failed, 2 for a bad config."""
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"ketch gateway: {error}", file=sys.stderr)
        return 2
    if args.state:
        config = dataclasses.replace(
            config,
            settings=dataclasses.replace(
                config.settings, state=state_location(args.state, Path.cwd())
            ),
        )
    if args.strict_dns:
        config = dataclasses.replace(
            config, settings=dataclasses.replace(config.settings, strict_dns=True)
        )
    settings = config.settings
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    level = (args.log_level or settings.log_level).lower()
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        sock = _listen(host, port)
    except OSError as error:
        print(f"ketch gateway: cannot listen on {host}:{port}: {error.strerror}", file=sys.stderr)
        return 2
    bound_host, bound_port = sock.getsockname()[:2]
    url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    scheme = "https" if settings.tls else "http"
    url = f"{scheme}://{url_host}:{bound_port}"
    return uvloop.run(_serve(config, sock, url, level))


def _freeze_startup_objects() -> None:
    """Keep what start-up built (modules, app, metrics, clients) out of later collections.

    The cyclic collector's oldest generation otherwise walks every one of those objects
    again and again while serving: pauses of milliseconds that land in the latency's tail.
    Frozen objects are never collected, which is right for what lives as long as the process.
    """
    gc.collect()
    gc.freeze()


async def _serve(config: GatewayConfig, sock: socket.socket, url: str, level: str) -> int:
    """Start the gateway (SIGTERM meanwhile stops it), then serve until SIGTERM or SIGINT."""
    log = logging.getLogger("ketch.gateway")
    try:
        gateway = Gateway(config)
    except ConfigError as error:
        print(f"ketch gateway: {error}", file=sys.stderr, flush=True)
        return 2
    loop = asyncio.get_running_loop()
    starting = asyncio.current_task()
    assert starting is not None
    for sig in HANDLED_SIGNALS:
        loop.add_signal_handler(sig, starting.cancel)
    try:
        await gateway.start()
    except (asyncio.CancelledError, WrapperStartFailed, OSError, ConfigError) as error:
        if not isinstance(error, asyncio.CancelledError):
            print(f"ketch gateway: cannot start: {error}", file=sys.stderr, flush=True)
        await gateway.stop()
        if isinstance(error, asyncio.CancelledError):
            return 0
        return 2 if isinstance(error, ConfigError) else 1
    finally:
        for sig in HANDLED_SIGNALS:
            loop.remove_signal_handler(sig)
    settings = config.settings
    max_connections = connection_cap(settings.limits)
    server_config = uvicorn.Config(
        create_app(gateway, manage_lifecycle=False),
        http=limited_protocol(settings.limits, max_connections),
        lifespan="on",
        log_level=level,
        access_log=level == "debug",
        timeout_graceful_shutdown=30,
        timeout_keep_alive=settings.limits.keep_alive_timeout_s,  # type: ignore[arg-type]
        **_tls_options(settings.tls),
    )
    try:
        server_config.load()
    except (ssl.SSLError, OSError) as error:
        print(f"ketch gateway: cannot serve HTTPS: {error}", file=sys.stderr, flush=True)
        await gateway.stop()
        return 2
    server = _Server(server_config)
    _freeze_startup_objects()
    print(READY_PREFIX + json.dumps({"url": url, "pid": os.getpid()}), flush=True)
    log.info("serving on %s (at most %d connections)", url, max_connections)
    try:
        await server.serve(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # shutting down: finish stopping the wrappers
        await gateway.stop()
    return 0
