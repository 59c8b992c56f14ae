"""The ``ketch`` command.

``ketch serve`` is built in; other distributions add subcommands through the
``ketch.commands`` entry-point group: each entry point is a function that takes
the argparse sub-parsers object, adds its parser, and sets ``handler`` (a
function from the parsed arguments to an exit status) as a default.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from types import FrameType
from typing import Any

from ketch.affinity import parse_cpu_list, pin_process
from ketch.allocator import tune_allocator
from ketch.discovery import installed_plugins, select_framework
from ketch.errors import KetchError, PluginError
from ketch.model_spec import ModelSpec
from ketch.probe import add_probe_command
from ketch.process import (
    ReadyInfo,
    format_listening_line,
    format_ready_line,
    stop_when_orphaned,
)
from ketch.server import WrapperServer, grpc_address
from ketch.telemetry.settings import tracing_from_environment
from ketch.telemetry.wrapper_telemetry import wrapper_telemetry
from ketch.tls import ServerTls
from ketch.version import __version__

__all__ = ["COMMANDS_GROUP", "main"]

COMMANDS_GROUP = "ketch.commands"
SIGNAL_POLL_SECONDS = 0.5
"""How often the main thread wakes to run signal handlers while it waits to stop."""

_log = logging.getLogger("ketch.serve")

Handler = Callable[[argparse.Namespace], int]


class _Terminated(BaseException):
    """SIGTERM or SIGINT arrived while the model was still loading."""


def _option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {number}")
    return number


def _cpu_list(text: str) -> frozenset[int]:
    try:
        return parse_cpu_list(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _port(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {number}")
    return number


def _add_serve(commands: Any) -> None:
    parser = commands.add_parser(
        "serve",
        help="serve one model over the Open Inference Protocol (gRPC)",
        description=(
            "Load MODEL_PATH with the framework plugin PLUGIN and serve it over gRPC: "
            "inference.GRPCInferenceService, grpc.health.v1 and ketch.v1.ObserveService. "
            "Prints one line 'KETCH_READY {json}' on standard output when ready; SIGTERM "
            "finishes the calls in flight and exits 0."
        ),
    )
    parser.add_argument(
        "plugin", help="an installed plugin's name (see 'ketch plugins') or module[:attribute]"
    )
    parser.add_argument(
        "model_path",
        help="the model file or URI, or a directory: one the plugin loads as a whole (a "
        "SavedModel), else one that holds exactly one model file (KServe's /mnt/models)",
    )
    parser.add_argument("--name", help="the model's name (default: the file's stem)")
    parser.add_argument("--version", default="1", help="the model's version (default: 1)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps, ...")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=_port, default=8001, help="port to listen on; 0 picks a free one"
    )
    parser.add_argument("--max-batch", type=_positive, help="most rows one call may carry")
    parser.add_argument(
        "--option",
        type=_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a plugin option (repeatable), such as method=predict_proba",
    )
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow pickle or joblib files, which run arbitrary code when loaded",
    )
    parser.add_argument("--workers", type=_positive, default=16, help="threads that run calls")
    parser.add_argument(
        "--cpus",
        type=_cpu_list,
        metavar="LIST",
        help="run on these CPUs only, such as 0 or 0,2-3 (as taskset -c; not pinned by default)",
    )
    parser.add_argument(
        "--tls-certificate", type=Path, help="serve TLS with this PEM certificate (and --tls-key)"
    )
    parser.add_argument("--tls-key", type=Path, help="the PEM private key of --tls-certificate")
    parser.add_argument(
        "--tls-client-ca",
        type=Path,
        help="require callers to show a certificate this PEM CA signed (mutual TLS)",
    )
    parser.add_argument(
        "--grace-period",
        type=float,
        default=30.0,
        help="seconds that calls in flight get to finish after SIGTERM",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    parser.add_argument(
        "--metrics-port",
        type=_port,
        help="serve Prometheus metrics on this port (0 picks a free one; off by default). "
        "Tracing follows OpenTelemetry's OTEL_* variables (off unless they ask for it)",
    )
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop (as on SIGTERM) when the process that started this one dies",
    )
    parser.set_defaults(handler=_serve)


def _server_tls(args: argparse.Namespace) -> ServerTls | None:
    """The TLS settings of ``ketch serve``; ValueError when they are incomplete."""
    if args.tls_certificate is None and args.tls_key is None:
        if args.tls_client_ca is not None:
            raise ValueError("--tls-client-ca needs --tls-certificate and --tls-key")
        return None
    if args.tls_certificate is None or args.tls_key is None:
        raise ValueError("--tls-certificate and --tls-key go together")
    return ServerTls(args.tls_certificate, args.tls_key, args.tls_client_ca)


def _add_plugins(commands: Any) -> None:
    parser = commands.add_parser("plugins", help="list the installed Ketch plugins")
    parser.set_defaults(handler=_list_plugins)


def _list_plugins(args: argparse.Namespace) -> int:
    installed = installed_plugins()
    if not installed:
        print("no Ketch plugins are installed")
    for name, entry_point in installed.items():
        print(f"{name}\t{entry_point.value}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _log.info("%s", tune_allocator())
    options = dict(args.option)
    if args.trust_pickle:
        options["trust_pickle"] = "true"
    try:
        if args.cpus is not None:
            pin_process(args.cpus)
        framework = select_framework(args.plugin)
        spec = ModelSpec.from_path(
            args.model_path,
            name=args.name,
            version=args.version,
            device=args.device,
            options=options,
        )
        telemetry = wrapper_telemetry(
            spec.name,
            spec.version,
            framework.name,
            spec.device,
            metrics=args.metrics_port is not None,
            tracing=tracing_from_environment("ketch-serve"),
        )
        server = WrapperServer(
            framework,
            spec,
            host=args.host,
            port=args.port,
            max_batch=args.max_batch,
            workers=args.workers,
            telemetry=telemetry,
            tls=_server_tls(args),
        )
        metrics_port = (
            telemetry.serve_metrics(args.host, args.metrics_port) if telemetry is not None else None
        )
        address = server.start()
    except (KetchError, OSError, ValueError) as error:
        print(f"ketch serve: {error}", file=sys.stderr)
        return 2

    stop = threading.Event()
    loading = True

    def on_signal(number: int, frame: FrameType | None) -> None:
        stop.set()
        if loading:
            raise _Terminated

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.exit_with_parent:
        stop_when_orphaned(os.getppid(), _log)
    try:
        print(format_listening_line(address), flush=True)
        runtime = server.load()
        loading = False
    except _Terminated:
        server.stop(grace=0)
        return 0
    except KetchError as error:
        print(f"ketch serve: cannot load model {spec.name!r}: {error}", file=sys.stderr)
        server.stop(grace=0)
        return 1
    _log.info(
        "serving model %r version %s with plugin %r (%s) on %s",
        runtime.name,
        runtime.version,
        framework.name,
        runtime.signature.platform or "unknown platform",
        address,
    )
    metrics = grpc_address(args.host, metrics_port) if metrics_port is not None else None
    ready = ReadyInfo(
        address, runtime.name, runtime.version, framework.name, os.getpid(), metrics=metrics
    )
    print(format_ready_line(ready), flush=True)
    while not stop.wait(timeout=SIGNAL_POLL_SECONDS):
        pass  # a signal that another thread received runs its handler only once this one wakes
    _log.info("stopping: finishing the calls in flight (up to %.0f s)", args.grace_period)
    server.stop(grace=args.grace_period)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # stopped: a late SIGTERM must not kill the exit
    _log.info("stopped")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``ketch`` parser with the built-in and the installed subcommands."""
    parser = argparse.ArgumentParser(prog="ketch", description="Ketch prediction serving")
    parser.add_argument("--version", action="version", version=f"ketch {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_serve(commands)
    _add_plugins(commands)
    add_probe_command(commands)
    for entry_point in entry_points(group=COMMANDS_GROUP):
        try:
            entry_point.load()(commands)
        except Exception as error:  # a broken add-on must not take the command down
            print(f"ketch: ignoring command {entry_point.name!r}: {error}", file=sys.stderr)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ketch`` command; the exit status."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except PluginError as error:
        print(f"ketch: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
