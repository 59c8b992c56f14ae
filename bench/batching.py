"""Adaptive batching, measured: throughput and tail latency per batching policy.

1. In process, at the model abstraction layer (the gateway's predictor, no HTTP),
   closed-loop load (64 clients, one digit per request) under a 20 ms latency
   objective, for no batching, ``aimd``, ``fixed`` and ``aimd`` with a batching
   delay; for a linear model (LogisticRegression) and a heavier one (RBF SVC),
   each served by one real ``ketch serve`` wrapper. A request not answered within
   20 ms counts as a miss; throughput counts answers within the objective.
2. End to end over HTTP at 64 clients: the gateway's ``/infer`` with batching against
   the bare Starlette ceiling of ``bench/gateway_overhead.py``.
3. ``--soak``: ten times the sustainable load, open loop, for a minute against the
   gateway: every request answered (200 or 503), and the gateway's memory over time.

PNG plots go to ``bench/results/``: the batch size over time as load steps up and
down, and latency CDFs per policy.

    python bench/batching.py [--seconds 5] [--soak 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ketch import EXTRA_VARIABLE, start_wrapper
from ketch_conformance import pacing
from ketch_gateway.control.config import BatchingConfig
from ketch_gateway.errors import ApiError
from ketch_gateway.metrics import Metrics
from ketch_gateway.serving.batcher import BatchingPredictor
from ketch_gateway.serving.direct import DirectPredictor
from ketch_gateway.serving.predictor import Dispatcher
from ketch_gateway.serving.replicas import Replica, ReplicaSet

RESULTS = Path(__file__).parent / "results"
OBJECTIVE_S = 0.020
SOAK_CLIENTS = 8
END_TO_END_BATCHING = {"policy": "aimd", "objective_ms": 10, "step": 8}

CLIENTS = 64
UNBOUNDED = "none, no deadline"

POLICIES: dict[str, BatchingConfig | None] = {
    "none": None,
    "aimd": BatchingConfig(policy="aimd", objective_ms=10.0, step=8),
    "fixed 64": BatchingConfig(policy="fixed", size=64),
    "aimd + 2 ms delay": BatchingConfig(policy="aimd", objective_ms=10.0, step=8, delay_ms=2.0),
}


@dataclass
class RunResult:
    """What one policy achieved: answers (some late), misses (errors or late answers)."""

    answered: int
    missed: int
    seconds: float
    latencies_ms: np.ndarray
    batch_trace: list[tuple[float, int]]

    @property
    def throughput(self) -> float:
        """Answers within the objective per second."""
        on_time = int(np.sum(self.latencies_ms <= OBJECTIVE_S * 1000))
        return on_time / self.seconds

    @property
    def answer_rate(self) -> float:
        """Every answer per second, late ones too."""
        return self.answered / self.seconds

    def percentile(self, q: float) -> float:
        """A latency percentile over answered requests, in ms."""
        return (
            float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")
        )


def train_models(folder: Path) -> tuple[dict[str, Path], np.ndarray]:
    """The linear and RBF models on digits, saved with skops; the rows to send."""
    import skops.io
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    rows, labels = load_digits(return_X_y=True)
    rows = rows / 16.0
    paths = {
        "linear (LogisticRegression)": folder / "linear.skops",
        "heavier (RBF SVC)": folder / "svc.skops",
    }
    skops.io.dump(
        LogisticRegression(max_iter=2000).fit(rows, labels), paths["linear (LogisticRegression)"]
    )
    skops.io.dump(SVC(kernel="rbf", gamma=0.05).fit(rows, labels), paths["heavier (RBF SVC)"])
    return paths, rows


def predictor_for(name: str, config: BatchingConfig | None, replicas: ReplicaSet) -> Dispatcher:
    """The gateway's predictor for a policy (None: no batching)."""
    if config is None:
        return DirectPredictor("model", replicas)
    predictor = BatchingPredictor("model", "1", replicas, config, Metrics())
    predictor.set_max_batch(512)
    return predictor


async def closed_loop(
    predictor: Dispatcher,
    rows: np.ndarray,
    schedule: list[tuple[float, int]],
    trace: Callable[[], int | None] | None = None,
    timeout: float = OBJECTIVE_S,
) -> RunResult:
    """Clients per phase of ``schedule`` ((seconds, clients), ...), each looping send/await."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    missed = 0
    batch_trace: list[tuple[float, int]] = []
    started = loop.time()

    async def client(index: int, until: float) -> None:
        nonlocal missed
        while loop.time() < until:
            row = rows[index % len(rows) : index % len(rows) + 1]
            sent = time.perf_counter()
            try:
                await predictor.predict({"input": row}, timeout=timeout)
            except ApiError:
                missed += 1
                continue
            latency = time.perf_counter() - sent
            if latency > OBJECTIVE_S:
                missed += 1
            latencies.append(latency)
            index += 1

    async def sample(until: float) -> None:
        while trace is not None and loop.time() < until:
            value = trace()
            if value is not None:
                batch_trace.append((loop.time() - started, value))
            await asyncio.sleep(0.05)

    for seconds, clients in schedule:
        until = loop.time() + seconds
        await asyncio.gather(sample(until), *(client(i * 7, until) for i in range(clients)))
    total = loop.time() - started
    return RunResult(len(latencies), missed, total, np.array(latencies) * 1000, batch_trace)


async def run_policy(
    address: str,
    config: BatchingConfig | None,
    rows: np.ndarray,
    seconds: float,
    timeout: float = OBJECTIVE_S,
) -> RunResult:
    """One policy against one wrapper, after a one-second warm-up; calls give up at ``timeout``."""
    replicas = ReplicaSet("model")
    replica = Replica(address)
    await replica.probe()
    replicas.add(replica)
    predictor = predictor_for("model", config, replicas)
    predictor.replicas_changed()
    await closed_loop(predictor, rows, [(1.0, CLIENTS)], timeout=timeout)
    result = await closed_loop(predictor, rows, [(seconds, CLIENTS)], timeout=timeout)
    await predictor.close()
    await replicas.close()
    return result


async def step_trace(address: str, rows: np.ndarray) -> RunResult:
    """AIMD's batch size while the load steps up and down."""
    replicas = ReplicaSet("model")
    replica = Replica(address)
    await replica.probe()
    replicas.add(replica)
    predictor = BatchingPredictor(
        "model", "1", replicas, POLICIES["aimd"] or BatchingConfig(), Metrics()
    )
    predictor.set_max_batch(512)
    predictor.replicas_changed()
    schedule = [(3.0, 1), (3.0, 16), (3.0, 128), (3.0, 16), (3.0, 1)]
    result = await closed_loop(predictor, rows, schedule, trace=lambda: predictor.target(replica))
    await predictor.close()
    await replicas.close()
    return result


def in_process(
    paths: dict[str, Path], rows: np.ndarray, seconds: float
) -> dict[str, dict[str, RunResult]]:
    """Part 1: every policy on every model."""
    import uvloop

    results: dict[str, dict[str, RunResult]] = {}
    for model, path in paths.items():
        results[model] = {}
        with start_wrapper("sklearn", path, name="model", echo_stderr=False) as wrapper:
            for policy, config in POLICIES.items():
                results[model][policy] = uvloop.run(
                    run_policy(wrapper.address, config, rows, seconds)
                )
            # no batching without the objective: the raw rate of one call per request
            results[model][UNBOUNDED] = uvloop.run(
                run_policy(wrapper.address, None, rows, seconds, timeout=10.0)
            )
    return results


def report_in_process(results: dict[str, dict[str, RunResult]]) -> None:
    """Print part 1's table."""
    print(f"\n1. in process, {CLIENTS} closed-loop clients, one digit per request, objective 20 ms")
    print(
        f"{'model':<28} {'policy':<18} {'ok/s':>8} {'missed':>7} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'x none':>7} {'all/s':>8} {'x raw':>6}"
    )
    for model, by_policy in results.items():
        base, raw = by_policy["none"], by_policy[UNBOUNDED]
        for policy, run in by_policy.items():
            print(
                f"{model:<28} {policy:<18} {run.throughput:>8.0f} {run.missed:>7} "
                f"{run.percentile(50):>7.2f} {run.percentile(99):>7.2f} "
                f"{run.throughput / max(base.throughput, 1e-9):>7.1f} {run.answer_rate:>8.0f} "
                f"{run.answer_rate / max(raw.answer_rate, 1e-9):>6.1f}"
            )
    print(
        "ok/s: answers within the objective per second (x none: against no batching);\n"
        f"all/s: every answer, late ones too (x raw: against '{UNBOUNDED}', one call per "
        "request with no objective, the raw rate without batching)"
    )


def plot(results: dict[str, dict[str, RunResult]], trace: RunResult) -> list[Path]:
    """The batch size trace and the latency CDFs, as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(exist_ok=True)
    written = []
    figure, axis = plt.subplots(figsize=(8, 4))
    times, sizes = zip(*trace.batch_trace, strict=True) if trace.batch_trace else ((), ())
    axis.step(times, sizes, where="post")
    for boundary, label in zip((0, 3, 6, 9, 12), ("1 client", "16", "128", "16", "1"), strict=True):
        axis.axvline(boundary, color="grey", linewidth=0.5)
        axis.text(boundary + 0.1, max(sizes or (1,)) * 0.95, label, fontsize=8)
    axis.set_xlabel("seconds")
    axis.set_ylabel("AIMD batch size target (rows)")
    axis.set_title("Batch size as load steps up and down (linear model, 10 ms batch objective)")
    figure.tight_layout()
    path = RESULTS / "batch_size_over_time.png"
    figure.savefig(path, dpi=100)
    written.append(path)
    figure, axes = plt.subplots(1, len(results), figsize=(12, 4))
    for axis, (model, by_policy) in zip(np.atleast_1d(axes), results.items(), strict=True):
        for policy, run in by_policy.items():
            values = np.sort(run.latencies_ms)
            if len(values):
                axis.plot(values, np.arange(1, len(values) + 1) / len(values), label=policy)
        axis.axvline(OBJECTIVE_S * 1000, color="grey", linestyle="--", linewidth=0.8)
        axis.set_xlim(0, 60)
        axis.set_xlabel("latency (ms)")
        axis.set_ylabel("fraction of answered requests")
        axis.set_title(model)
        axis.legend(fontsize=8)
    figure.tight_layout()
    path = RESULTS / "latency_cdf_per_policy.png"
    figure.savefig(path, dpi=100)
    written.append(path)
    return written


def end_to_end(seconds: float) -> dict[str, Any]:
    """Part 2: the gateway's /infer with batching against the bare Starlette ceiling, 64 clients."""
    import gateway_overhead
    import httpx

    from ketch_gateway import start_gateway

    with tempfile.TemporaryDirectory(prefix="ketch-bench-") as folder:
        config, body, _ = gateway_overhead.prepare(Path(folder), END_TO_END_BATCHING)
        with start_gateway(config, echo_stderr=False) as gateway:
            url = f"{gateway.url}/v2/models/digits/infer"
            size = len(httpx.post(url, content=body).content)
            with gateway_overhead.bare_server(size) as bare_url:
                bare = gateway_overhead.measure(
                    "http", f"{bare_url}/v2/models/digits/infer", body, CLIENTS, seconds
                )
                batched = gateway_overhead.measure("http", url, body, CLIENTS, seconds)
    return {"bare": bare, "gateway": batched}


def rss_kib(pid: int) -> int:
    """Resident memory of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


SOAK_PACING = {EXTRA_VARIABLE: pacing.REFERENCE, pacing.PREDICT_DELAY_VARIABLE: "slow=0.02"}
"""The pacing plugin makes every batch of the soak's model take 20 ms."""


def soak(seconds: float) -> dict[str, Any]:
    """Part 3: ten times the sustainable load for ``seconds`` against a batching gateway.

    The model sleeps 20 ms per batch of 2 rows, so a handful of clients saturate it;
    ten times as many closed-loop clients then overload it for ``seconds``, while the
    gateway's memory is sampled every second. Each client waits for every answer, so a
    request left unanswered would stop its client and show as missing throughput.
    """
    import threading

    import gateway_overhead

    from ketch_conformance.reference import fit_softmax, save_softmax
    from ketch_gateway import config_text, model_table, start_gateway, version_table, write_config

    with tempfile.TemporaryDirectory(prefix="ketch-soak-") as folder:
        rows = np.random.default_rng(0).uniform(0, 1, (200, 64)).astype(np.float32)
        labels = rows.argmax(axis=1) % 10
        model = save_softmax(fit_softmax(rows, labels, 10, epochs=5), Path(folder) / "m.npz")
        slow = model_table(
            "slow",
            version_table("ketch_conformance.reference:plugin", model),
            batching={"policy": "fixed", "size": 2, "max_queue": 64},
        )
        config = write_config(
            Path(folder), config_text(gateway={"log_level": "warning"}, models=[slow])
        )
        request = {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": rows[0].tolist()}
        body = json.dumps({"inputs": [request]}).encode()
        with start_gateway(config, env=SOAK_PACING, echo_stderr=False) as gateway:
            url = f"{gateway.url}/v2/models/slow/infer"
            saturating = gateway_overhead.measure("http", url, body, SOAK_CLIENTS, 5.0)
            memory: list[tuple[float, int]] = []
            result: dict[str, Any] = {}

            def overload() -> None:
                result.update(
                    gateway_overhead.measure("http", url, body, 10 * SOAK_CLIENTS, seconds)
                )

            load = threading.Thread(target=overload)
            started = time.monotonic()
            load.start()
            while load.is_alive():
                memory.append((time.monotonic() - started, rss_kib(gateway.pid)))
                load.join(timeout=1.0)
            memory.append((time.monotonic() - started, rss_kib(gateway.pid)))
    result["saturating"] = saturating
    result["memory_kib"] = memory
    return result


def main() -> int:
    """Run the benchmark; numbers are reported, never asserted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--soak", type=float, default=0.0, help="seconds of 10x overload (0: skip)")
    parser.add_argument("--skip-http", action="store_true", help="skip part 2")
    args = parser.parse_args()
    summary: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ketch-bench-") as folder:
        paths, rows = train_models(Path(folder))
        results = in_process(paths, rows, args.seconds)
        with start_wrapper(
            "sklearn", paths["linear (LogisticRegression)"], name="model", echo_stderr=False
        ) as wrapper:
            import uvloop

            trace = uvloop.run(step_trace(wrapper.address, rows))
    report_in_process(results)
    for path in plot(results, trace):
        print(f"wrote {path}")
    summary["in_process"] = {
        model: {
            p: {
                "throughput": r.throughput,
                "answer_rate": r.answer_rate,
                "missed": r.missed,
                "p99_ms": r.percentile(99),
            }
            for p, r in by.items()
        }
        for model, by in results.items()
    }
    if not args.skip_http:
        http = end_to_end(args.seconds)
        ratio = http["gateway"]["throughput"] / http["bare"]["throughput"]
        print(f"\n2. end to end over HTTP, {CLIENTS} clients, one digit per request")
        for name, row in http.items():
            print(
                f"{name:>8}: {row['throughput']:>7.0f} req/s, "
                f"p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms"
            )
        print(f"gateway /infer with batching / bare Starlette ceiling: {ratio:.2f} (target >= 0.4)")
        summary["http"] = http
    if args.soak:
        result = soak(args.soak)
        memory = [kib for _, kib in result["memory_kib"]]
        saturating = result["saturating"]
        print(
            f"\n3. soak: {SOAK_CLIENTS} clients saturate the model at "
            f"{saturating['throughput']:.0f} req/s; {10 * SOAK_CLIENTS} clients for "
            f"{args.soak:g} s: "
            f"{result['requests']} answers in the measured window ({result['errors']} of them "
            f"503 shed), p99 {result['p99_ms']:.1f} ms; gateway RSS "
            f"{memory[0] / 1024:.1f} MiB at the start, {max(memory) / 1024:.1f} MiB at most, "
            f"{memory[-1] / 1024:.1f} MiB at the end ({len(memory)} samples)"
        )
        summary["soak"] = result
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "batching.json").write_text(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
