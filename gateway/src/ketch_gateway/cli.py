"""``ketch gateway --config FILE``: run the gateway under uvicorn (uvloop, httptools).

The gateway binds its socket itself (``--port 0`` picks a free port) and prints
``KETCH_GATEWAY_READY {"url": ...}`` on standard output once every model's
wrappers are up and it answers requests. SIGTERM or SIGINT stops it, and with it
every wrapper it started. ``--workers N`` runs N gateway processes on the one port under
a parent that supervises them (:mod:`ketch_gateway.workers`).
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

from ketch.process import stop_when_orphaned
from ketch_gateway.control.config import (
    WORKER_SOCKETS,
    ConfigError,
    GatewayConfig,
    load_config,
    state_location,
)
from ketch_gateway.control.security_config import TlsConfig
from ketch_gateway.control.supervisor import WrapperStartFailed
from ketch_gateway.gateway import Gateway
from ketch_gateway.http.application import create_app
from ketch_gateway.http.server_limits import connection_cap, limited_protocol
from ketch_gateway.stores.contract import is_redis_location
from ketch_gateway.workers.header import WorkerHeader
from ketch_gateway.workers.pool import READY_PREFIX, run_workers
from ketch_gateway.workers.role import WorkerRole
from ketch_gateway.workers.sockets import listen, reserve_port

HANDLED_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)

__all__ = ["READY_PREFIX", "add_command", "run_gateway"]


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
    parser.add_argument(
        "--workers",
        type=int,
        help="gateway processes serving the port, under one parent that supervises them "
        "(overrides the file; more than 1 needs the Redis state store)",
    )
    parser.add_argument(
        "--worker-socket",
        choices=WORKER_SOCKETS,
        help="how workers share the port: one inherited socket (shared) or a socket each "
        "with SO_REUSEPORT (reuseport); overrides the file",
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
    overrides: dict[str, Any] = {}
    if args.strict_dns:
        overrides["strict_dns"] = True
    if args.workers is not None:
        overrides["workers"] = args.workers
    if args.worker_socket is not None:
        overrides["worker_socket"] = args.worker_socket
    config = dataclasses.replace(config, settings=dataclasses.replace(config.settings, **overrides))
    settings = config.settings
    role = WorkerRole.from_environment()
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    level = (args.log_level or settings.log_level).lower()
    who = "" if role is None else f"worker {role.index} "
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s {who}%(name)s: %(message)s",
    )
    parent = role is None and settings.workers > 1
    if parent and (refusal := _unshared_store(settings.state, settings.workers)):
        print(f"ketch gateway: {refusal}", file=sys.stderr)
        return 2
    try:
        sock = _socket(host, port, role, parent=parent, mode=settings.worker_socket)
    except OSError as error:
        print(f"ketch gateway: cannot listen on {host}:{port}: {error.strerror}", file=sys.stderr)
        return 2
    bound_host, bound_port = sock.getsockname()[:2]
    url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    scheme = "https" if settings.tls else "http"
    url = f"{scheme}://{url_host}:{bound_port}"
    if parent:
        command = _worker_command(args, host, bound_port, level)
        return run_workers(config, command, sock, url, settings.workers)
    return uvloop.run(_serve(config, sock, url, level, role))


def _unshared_store(state: str, workers: int) -> str | None:
    """Why ``workers`` processes cannot run on this state store; None when they can."""
    if is_redis_location(state):
        return None
    return (
        f"--workers {workers} needs a state store the workers share, and the SQLite store "
        f"{state} is one process's: each worker would keep its own admin changes, feedback, "
        "policy state and rollouts. Use the Redis store ([gateway] state = "
        '"redis://HOST:6379/0", or --state redis://...), or run one worker'
    )


def _socket(
    host: str, port: int, role: WorkerRole | None, *, parent: bool, mode: str
) -> socket.socket:
    """The socket of this process: listening, or (a parent under ``reuseport``) holding the port."""
    if role is not None:
        if role.listen_fd is not None:
            return socket.socket(fileno=role.listen_fd)
        return listen(host, port, reuse_port=True)
    if parent and mode == "reuseport":
        return reserve_port(host, port)
    return listen(host, port)


def _worker_command(args: argparse.Namespace, host: str, port: int, level: str) -> list[str]:
    """How the parent starts a worker: ``ketch gateway`` with the parent's settings, port bound."""
    command = [sys.executable, "-m", "ketch", "gateway", "--config", str(args.config)]
    command += ["--host", host, "--port", str(port), "--log-level", level]
    if args.state:
        command += ["--state", args.state]
    if args.strict_dns:
        command.append("--strict-dns")
    return command


def _freeze_startup_objects() -> None:
    """Keep what start-up built (modules, app, metrics, clients) out of later collections.

    The cyclic collector's oldest generation otherwise walks every one of those objects
    again and again while serving: pauses of milliseconds that land in the latency's tail.
    Frozen objects are never collected, which is right for what lives as long as the process.
    """
    gc.collect()
    gc.freeze()


async def _serve(
    config: GatewayConfig, sock: socket.socket, url: str, level: str, role: WorkerRole | None
) -> int:
    """Start the gateway (SIGTERM meanwhile stops it), then serve until SIGTERM or SIGINT.

    A worker of ``--workers N`` (``role``) joins its parent's wrappers, says which worker
    answered on each response, and stops when its parent is gone.
    """
    log = logging.getLogger("ketch.gateway")
    if role is not None:
        stop_when_orphaned(role.parent, log)
    try:
        gateway = Gateway(config, parent_wrappers=None if role is None else role.wrappers)
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
    app: Any = create_app(gateway, manage_lifecycle=False)
    if role is not None:
        app = WorkerHeader(app, role.index)
        gateway.metrics.worker_restarts.set(role.restarts)
    server_config = uvicorn.Config(
        app,
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
