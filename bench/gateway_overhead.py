"""What the gateway costs: its OIP ``/infer`` against a bare Starlette ceiling and direct gRPC.

A closed-loop load generator (N clients, each sending its next request when the
last one is answered, over keep-alive connections on 127.0.0.1) measures, side by
side in one run, for 1, 16 and 64 clients:

- (a) ``bare``: a Starlette endpoint under uvicorn (uvloop, httptools) that reads the
  same request body and answers a constant of the gateway's response size: the
  ceiling for any Python gateway on this machine;
- (b) ``gateway``: ``POST /v2/models/digits/infer`` (JSON, one digit per request) on
  ``ketch gateway``, which forwards it over gRPC to the scikit-learn wrapper it runs,
  with the default adaptive batching; ``unbatched``: the same with batching ``none``;
- (c) ``grpc``: the same inference sent straight to that wrapper over gRPC.

Each server and the load generator run in their own processes. The table gives
throughput and p50/p99 latency, and the ratios (b)/(a) and (b)/(c) of throughput.

    python bench/gateway_overhead.py [--seconds 5] [--clients 1 16 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

RESULTS = Path(__file__).parent / "results"
ADMIN_TOKEN = "bench-token"


def run_bare_server(response_size: int) -> None:
    """Serve the ceiling: read the body, answer a constant; print the port."""
    import socket

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    constant = b'{"outputs":"' + b"x" * max(response_size - 14, 0) + b'"}'

    async def infer(request: Request) -> Response:
        await request.body()
        return Response(constant, media_type="application/json")

    app = Starlette(routes=[Route("/v2/models/digits/infer", infer, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(
        app, loop="uvloop", http="httptools", log_level="warning", access_log=False
    )
    uvicorn.Server(config).run(sockets=[sock])


@contextmanager
def bare_server(response_size: int) -> Iterator[str]:
    """The ceiling's URL while it runs."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--bare-server", str(response_size)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield f"http://127.0.0.1:{process.stdout.readline().strip()}"
    finally:
        process.terminate()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


@dataclass
class Window:
    """When a load run measures, and what it measured."""

    warm_until: float
    stop_at: float
    latencies: list[float] = field(default_factory=list)


async def _http_client(url: str, bodies: list[bytes], start: int, window: Window) -> int:
    parsed = urlparse(url)
    reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port)
    requests = [
        (
            f"POST {parsed.path} HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for body in bodies
    ]
    errors = 0
    turn = start
    while (now := time.perf_counter()) < window.stop_at:
        writer.write(requests[turn % len(requests)])
        turn += 1
        headers = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in headers.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        if not headers.startswith(b"HTTP/1.1 200"):
            errors += 1
        if now >= window.warm_until:
            window.latencies.append(time.perf_counter() - now)
    writer.close()
    return errors


async def _grpc_client(address: str, payloads: list[bytes], start: int, window: Window) -> int:
    import grpc.aio

    channel = grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
    call = channel.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=None,
        response_deserializer=None,
    )
    turn = start
    while (now := time.perf_counter()) < window.stop_at:
        await call(payloads[turn % len(payloads)])
        turn += 1
        if now >= window.warm_until:
            window.latencies.append(time.perf_counter() - now)
    await channel.close(None)
    return 0


async def _load(
    kind: str, target: str, bodies: list[bytes], clients: int, seconds: float
) -> dict[str, Any]:
    warm_until = time.perf_counter() + 1.0
    window = Window(warm_until, warm_until + seconds)
    client = _http_client if kind == "http" else _grpc_client
    errors = await asyncio.gather(
        *(client(target, bodies, index * 97, window) for index in range(clients))
    )
    values = np.array(window.latencies) * 1000
    return {
        "requests": len(window.latencies),
        "errors": sum(errors),
        "throughput": len(window.latencies) / seconds,
        "p50_ms": float(np.percentile(values, 50)),
        "p99_ms": float(np.percentile(values, 99)),
        "max_ms": float(values.max()),
        "percentiles_ms": np.percentile(values, np.arange(101)).round(3).tolist(),
    }


def run_load(kind: str, target: str, body_file: str, clients: int, seconds: float) -> None:
    """Generate load (in this process) and print the result as JSON."""
    import uvloop

    data = Path(body_file).read_bytes()
    bodies = data.split(b"\n") if kind == "http" else [data]
    print(json.dumps(uvloop.run(_load(kind, target, bodies, clients, seconds))), flush=True)


def measure(
    kind: str, target: str, body: bytes | list[bytes], clients: int, seconds: float
) -> dict[str, Any]:
    """One load run in its own process; HTTP clients cycle through ``body`` when it is a list."""
    with tempfile.NamedTemporaryFile(suffix=".body") as file:
        file.write(b"\n".join(body) if isinstance(body, list) else body)
        file.flush()
        output = subprocess.run(
            [
                sys.executable,
                __file__,
                "--load",
                kind,
                target,
                file.name,
                str(clients),
                str(seconds),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    result: dict[str, Any] = json.loads(output)
    return result


def prepare(folder: Path, batching: Mapping[str, Any] | None = None) -> tuple[Path, bytes, bytes]:
    """The digits model and config; the JSON body for /infer and the gRPC request bytes.

    ``batching`` is the digits model's batching table (the gateway's default when None).
    """
    import skops.io
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from ketch.wire import infer_request
    from ketch_gateway import config_text, model_table, version_table, write_config

    rows, labels = load_digits(return_X_y=True)
    rows = rows / 16.0
    skops.io.dump(LogisticRegression(max_iter=2000).fit(rows, labels), folder / "digits.skops")
    digits = version_table("sklearn", "digits.skops")
    config = write_config(
        folder,
        config_text(
            gateway={"admin_token": ADMIN_TOKEN, "log_level": "warning"},
            models=[
                model_table("digits", digits, batching=batching),
                model_table("unbatched", digits, batching={"policy": "none"}),
            ],
        ),
    )
    row = rows[:1]
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 64],
                    "datatype": "FP64",
                    "data": row.ravel().tolist(),
                }
            ]
        }
    ).encode()
    payload = infer_request({"input": row}, model="digits").SerializeToString()
    return config, body, payload


def wrapper_address(url: str) -> str:
    """The address of the wrapper the gateway started."""
    import httpx

    models = httpx.get(
        f"{url}/admin/models", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ).json()
    return str(models["models"][0]["versions"][0]["wrappers"][0]["address"])


def main() -> int:
    """Run the benchmark and print the table (numbers are reported, never asserted)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--load", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server is not None:
        run_bare_server(args.bare_server)
        return 0
    if args.load:
        kind, target, body_file, clients, seconds = args.load
        run_load(kind, target, body_file, int(clients), float(seconds))
        return 0

    import httpx

    from ketch_gateway import start_gateway

    results: dict[str, dict[int, dict[str, Any]]] = {
        "bare": {},
        "gateway": {},
        "unbatched": {},
        "grpc": {},
    }
    with tempfile.TemporaryDirectory(prefix="ketch-bench-") as folder:
        config, body, payload = prepare(Path(folder))
        with start_gateway(config, echo_stderr=False) as gateway:
            infer_url = f"{gateway.url}/v2/models/digits/infer"
            unbatched_url = f"{gateway.url}/v2/models/unbatched/infer"
            response_size = len(httpx.post(infer_url, content=body).content)
            address = wrapper_address(gateway.url)
            with bare_server(response_size) as bare_url:
                for clients in args.clients:
                    results["bare"][clients] = measure(
                        "http", f"{bare_url}/v2/models/digits/infer", body, clients, args.seconds
                    )
                    results["gateway"][clients] = measure(
                        "http", infer_url, body, clients, args.seconds
                    )
                    results["unbatched"][clients] = measure(
                        "http", unbatched_url, body, clients, args.seconds
                    )
                    results["grpc"][clients] = measure(
                        "grpc", address, payload, clients, args.seconds
                    )
    print(f"\nclosed loop, one digit per request, {args.seconds:g} s per run")
    print(f"{'clients':>7} {'target':>8} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
    for clients in args.clients:
        for name in ("bare", "gateway", "unbatched", "grpc"):
            row = results[name][clients]
            print(
                f"{clients:>7} {name:>8} {row['throughput']:>8.0f} {row['p50_ms']:>7.2f} "
                f"{row['p99_ms']:>7.2f} {row['errors']:>6}"
            )
    print(
        f"\n{'clients':>7} {'gateway/bare':>12} {'gateway/grpc':>12} {'unbatched/bare':>14} "
        "(throughput ratios)"
    )
    for clients in args.clients:
        gateway_rate = results["gateway"][clients]["throughput"]
        bare_rate = results["bare"][clients]["throughput"]
        print(
            f"{clients:>7} {gateway_rate / bare_rate:>12.2f} "
            f"{gateway_rate / results['grpc'][clients]['throughput']:>12.2f} "
            f"{results['unbatched'][clients]['throughput'] / bare_rate:>14.2f}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gateway_overhead.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
