"""``ketch probe``: a health check for container images, with no tool beyond Ketch itself.

Kubernetes probes gRPC and HTTP natively, but a container engine's HEALTHCHECK
runs a command inside the image. ``ketch probe grpc ADDRESS`` asks the standard
``grpc.health.v1`` service (what ``ketch serve`` answers SERVING once its model
can answer); ``ketch probe http URL`` asks an HTTP endpoint such as the
gateway's ``/v2/health/ready``. Exit status 0 means healthy, 1 not.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["add_probe_command", "probe_grpc", "probe_http"]


def probe_grpc(address: str, service: str = "", timeout: float = 3.0) -> str | None:
    """None when ``service`` at ``address`` reports SERVING, else what went wrong."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as error:
            code = error.code()
            return f"{address}: {code.name if code else 'error'}: {error.details()}"
    if answer.status != health_pb2.HealthCheckResponse.SERVING:
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
        return f"{address}: {service or 'the server'} is {name}"
    return None


def probe_http(url: str, timeout: float = 3.0) -> str | None:
    """None when a GET of ``url`` answers 2xx, else what went wrong."""
    # imported here: urllib.request (http.client, email, ssl) costs every ``ketch serve``
    # and gateway tens of milliseconds of start-up and megabytes they never use
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            status = int(answer.status)
    except urllib.error.HTTPError as error:
        return f"{url}: HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return f"{url}: {reason}"
    return None if 200 <= status < 300 else f"{url}: HTTP {status}"


def _run(args: argparse.Namespace) -> int:
    if args.kind == "grpc":
        problem = probe_grpc(args.target, args.service, args.timeout)
    else:
        problem = probe_http(args.target, args.timeout)
    if problem is not None:
        print(f"ketch probe: unhealthy: {problem}", file=sys.stderr)
        return 1
    print(f"healthy: {args.target}")
    return 0


def add_probe_command(commands: Any) -> None:
    """Add ``probe`` to the ``ketch`` command's sub-commands."""
    parser = commands.add_parser(
        "probe",
        help="check a wrapper's gRPC health or an HTTP endpoint (exit 0 when healthy)",
        description=(
            "Exit 0 when healthy, 1 when not. 'ketch probe grpc HOST:PORT' asks the standard "
            "grpc.health.v1 service, which 'ketch serve' answers SERVING once its model can "
            "answer; 'ketch probe http URL' GETs a URL such as the gateway's "
            "/v2/health/ready and wants a 2xx status. For container HEALTHCHECKs."
        ),
    )
    parser.add_argument("kind", choices=("grpc", "http"), help="the protocol to probe with")
    parser.add_argument("target", help="grpc: HOST:PORT; http: the URL to GET")
    parser.add_argument(
        "--service",
        default="",
        help="grpc: the health service name to ask about (default: the whole server)",
    )
    parser.add_argument(
        "--timeout", type=float, default=3.0, help="seconds to wait for an answer (default: 3)"
    )
    parser.set_defaults(handler=_run)
