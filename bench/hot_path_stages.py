"""CPU per request, by stage, on the gateway's and the wrapper's hot paths.

Two measurements side by side, for one digit per request (OIP JSON) to a scikit-learn
LogisticRegression:

1. **Processes under load.** wrk drives the gateway's ``/infer`` and, in the same run,
   the bare Starlette + uvicorn endpoint (``peer_servers/bare_app.py``), at
   ``--connections``; the CPU time that each process (and the gateway's wrapper) spent,
   read from ``/proc``, divided by the requests answered, gives CPU µs per request.
   The bare endpoint's is what HTTP parsing, ASGI and Starlette routing cost.
2. **Stages in process.** The gateway's and the SDK's own functions, called in a loop on
   the same body: JSON decoding, OIP parsing into numpy, validation, the gRPC request's
   encoding and the response's decoding (per row, at the batch size the gateway formed
   under load), the JSON response, the metrics; and on the wrapper's side, the request's
   protobuf decoding, tensor decoding, the model call, and the response's encoding.

What the stages do not explain (the gateway's total minus the HTTP floor and the stages)
is the event loop, the batching queue and the gRPC channel (``grpc.aio``) between them.

    python bench/hot_path_stages.py [--seconds 8] [--connections 64]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import timeit
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from peer_targets import TARGETS, Running, descendants
from wrk_load import LoadResult, run_wrk

TICKS = os.sysconf("SC_CLK_TCK")
ROWS = 256


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def listening_pid(url: str) -> int:
    """The process that listens on ``url``'s port (from /proc/net/tcp and each fd)."""
    port = int(url.split(":")[2].split("/", maxsplit=1)[0])
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[3] == "0A" and int(parts[1].split(":")[1], 16) == port:
            inodes.add(parts[9])
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        with contextlib.suppress(OSError):
            link = os.readlink(fd)
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return int(fd.parent.parent.name)
    raise RuntimeError(f"nobody listens on port {port}")


def bodies(rows: np.ndarray) -> list[bytes]:
    """One OIP JSON body per row."""
    return [
        json.dumps(
            {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP64", "data": list(r)}]}
        ).encode()
        for r in rows
    ]


def under_load(
    running: Running, pids: dict[str, int], sent: list[bytes], connections: int, seconds: float
) -> tuple[LoadResult, dict[str, float]]:
    """Load ``running`` and return the result and CPU µs per request of each process."""
    run_wrk(running.url, sent, connections, 1.0)
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    result = run_wrk(running.url, sent, connections, seconds)
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    return result, {name: (after[name] - before[name]) * 1e6 / result.requests for name in pids}


def per_call_us(function: Callable[[], object], seconds: float = 0.3) -> float:
    """Median µs per call of ``function`` over 5 timed runs of about ``seconds`` each."""
    timer = timeit.Timer(function)
    count, _ = timer.autorange()
    runs = timer.repeat(repeat=5, number=max(1, int(count * seconds / 0.2)))
    calls = max(1, int(count * seconds / 0.2))
    return float(np.median(runs)) / calls * 1e6


def gateway_stages(model_path: Path, sent: list[bytes], batch: int) -> dict[str, float]:
    """µs per request of each stage of the gateway's /infer, with ``batch`` rows per gRPC call."""
    from ketch import ModelSpec, select_framework, validate_inputs
    from ketch.proto import grpc_service_pb2 as pb
    from ketch.wire import infer_request, infer_response, response_arrays
    from ketch_gateway.http.bodies import parse_json
    from ketch_gateway.http.oip_codec import encode_infer_response, parse_infer_request
    from ketch_gateway.metrics import Metrics

    framework = select_framework("sklearn")
    model = framework.load(ModelSpec.from_path(model_path))
    signature = framework.signature(model)
    body = sent[0]
    inputs = parse_infer_request(body, None).inputs
    rows = np.concatenate([parse_infer_request(b, None).inputs["input"] for b in sent[:batch]])
    outputs = framework.batch_predict(model, {"input": rows})
    reply = infer_response(
        outputs, signature.output_datatypes, model="digits", version="1"
    ).SerializeToString()
    one = {name: array[:1] for name, array in outputs.items()}
    metrics = Metrics()

    def encode_request() -> bytes:
        stacked = {"input": np.concatenate([inputs["input"]] * batch)}
        return bytes(infer_request(stacked, model="digits").SerializeToString())

    def decode_response() -> object:
        arrays = response_arrays(pb.ModelInferResponse.FromString(reply))
        return [{n: a[i : i + 1] for n, a in arrays.items()} for i in range(batch)]

    def observe() -> None:
        with metrics.observe("model", "digits"):
            pass

    json_us = per_call_us(lambda: parse_json(body))
    return {
        "JSON decoding (orjson)": json_us,
        "OIP fields into numpy": per_call_us(lambda: parse_infer_request(body, None)) - json_us,
        "validation against the signature": per_call_us(lambda: validate_inputs(signature, inputs)),
        "gRPC request encoding (per row)": per_call_us(encode_request) / batch,
        "gRPC response decoding (per row)": per_call_us(decode_response) / batch,
        "JSON response": per_call_us(
            lambda: encode_infer_response(
                model="digits",
                version="1",
                outputs=one,
                datatypes=signature.output_datatypes,
                binary=[],
                request_id=None,
                parameters=None,
            )
        ),
        "metrics (count and time)": per_call_us(observe),
    }


def wrapper_stages(model_path: Path, sent: list[bytes], batch: int) -> dict[str, float]:
    """µs per call of each stage of the wrapper's ModelInfer at ``batch`` rows."""
    from ketch import ModelRuntime, ModelSpec, select_framework, validate_inputs, validate_outputs
    from ketch.proto import grpc_service_pb2 as pb
    from ketch.wire import decode_tensors, infer_request, infer_response
    from ketch_gateway.http.oip_codec import parse_infer_request

    framework = select_framework("sklearn")
    runtime = ModelRuntime.load(framework, ModelSpec.from_path(model_path))
    rows = np.concatenate([parse_infer_request(b, None).inputs["input"] for b in sent[:batch]])
    wire = infer_request({"input": rows}, model="digits").SerializeToString()
    request = pb.ModelInferRequest.FromString(wire)
    inputs = decode_tensors(request.inputs, request.raw_input_contents)
    outputs = runtime.predict(inputs, None)
    datatypes = runtime.signature.output_datatypes
    model_us = per_call_us(lambda: framework.batch_predict(runtime.model, inputs))
    return {
        "protobuf request decoding": per_call_us(lambda: pb.ModelInferRequest.FromString(wire)),
        "tensor decoding": per_call_us(
            lambda: decode_tensors(request.inputs, request.raw_input_contents)
        ),
        "model (plugin's batch_predict)": model_us,
        "Ketch's checks of inputs and outputs": per_call_us(
            lambda: validate_inputs(runtime.signature, inputs)
        )
        + per_call_us(lambda: validate_outputs(runtime.signature, outputs, batch)),
        "response encoding": per_call_us(
            lambda: infer_response(
                outputs, datatypes, model="digits", version="1"
            ).SerializeToString()
        ),
    }


@contextlib.contextmanager
def models() -> Iterator[tuple[Path, Path, np.ndarray]]:
    """A folder holding the digits LogisticRegression (skops and pickle); the rows to send."""
    import joblib
    import skops.io
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    rows, labels = load_digits(return_X_y=True)
    rows = rows / 16.0
    estimator = LogisticRegression(max_iter=2000).fit(rows, labels)
    with tempfile.TemporaryDirectory(prefix="ketch-stages-") as name:
        folder = Path(name)
        skops.io.dump(estimator, folder / "logreg.skops")
        joblib.dump(estimator, folder / "logreg.pkl")
        yield folder, folder / "logreg.pkl", rows[:ROWS]


def print_table(title: str, stages: dict[str, float], total: float | None) -> None:
    """One stage table, with each stage's share of ``total`` when given."""
    print(f"\n{title}")
    print(f"| stage | µs | share of {'total' if total else '-'} |\n|---|---|---|")
    for name, value in stages.items():
        share = f"{value / total:.0%}" if total else ""
        print(f"| {name} | {value:.1f} | {share} |")


def main(argv: list[str] | None = None) -> int:
    """Measure; print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=64)
    options = parser.parse_args(argv)
    print(f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    with models() as (folder, pickle, rows):
        sent = bodies(rows)
        with TARGETS["uvicorn"].start(folder, pickle) as bare:
            bare_load, bare_cpu = under_load(
                bare, {"bare": listening_pid(bare.url)}, sent, options.connections, options.seconds
            )
        with TARGETS["ketch"].start(folder, pickle) as ketch:
            gateway_pid = listening_pid(ketch.url)
            pids = {"gateway": gateway_pid}
            for pid in descendants(gateway_pid):  # the one wrapper it starts
                pids["wrapper"] = pid
            load, cpu = under_load(ketch, pids, sent, options.connections, options.seconds)
            batches = _batch_sizes(ketch.url)
        batch = max(1, round(batches))
        print(
            f"\n{options.connections} connections: gateway {load.throughput:,.0f} req/s, "
            f"bare {bare_load.throughput:,.0f} req/s; gateway CPU {cpu['gateway']:.0f} µs/req, "
            f"wrapper {cpu.get('wrapper', float('nan')):.0f} µs/req, bare {bare_cpu['bare']:.0f}"
            f" µs/req; mean batch {batches:.1f} rows"
        )
        stages = {"HTTP, ASGI, routing (the bare endpoint's CPU)": bare_cpu["bare"]}
        stages |= gateway_stages(folder / "logreg.skops", sent, batch)
        explained = sum(stages.values())
        stages["event loop, batching queue, gRPC channel (the rest)"] = cpu["gateway"] - explained
        print_table(
            f"gateway, CPU µs per request ({batch} rows per gRPC call)", stages, cpu["gateway"]
        )
        wrapper = wrapper_stages(folder / "logreg.skops", sent, batch)
        if "wrapper" in cpu:
            per_call = cpu["wrapper"] * batches
            wrapper["gRPC server, threads (the rest)"] = per_call - sum(wrapper.values())
            print_table(f"wrapper, CPU µs per call of {batch} rows", wrapper, per_call)
        else:
            print_table(f"wrapper, CPU µs per call of {batch} rows", wrapper, None)
    return 0


def _batch_sizes(url: str) -> float:
    """The mean rows per batch that the gateway formed, from its Prometheus metrics."""
    import httpx

    base = url.split("/v2/", maxsplit=1)[0]
    text = httpx.get(f"{base}/metrics", timeout=10).text
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("ketch_batch_size_rows_sum"):
            total += float(line.split()[-1])
        elif line.startswith("ketch_batch_size_rows_count"):
            count += float(line.split()[-1])
    return total / count if count else 1.0


if __name__ == "__main__":
    sys.exit(main())
