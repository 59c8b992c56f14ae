"""One gateway process against ``--workers 2`` (shared socket, and SO_REUSEPORT), interleaved.

Three gateways serve the digits LogisticRegression at the same time, each with its own
managed wrapper and all on one Redis server (the store workers need): one process,
two workers sharing one listening socket, and two workers with a socket each bound with
``SO_REUSEPORT``. For each connection count wrk loads one, then the next, ``--rounds``
times, in an order that rotates every round, so the machine's noise falls on all alike.
Besides throughput, p50 and p99 (medians over the rounds), it reports the rows per batch
the gateway formed (from ``ketch_batch_size_rows``: the cost of each worker batching
alone) and how the gateway's CPU time split between the two workers (how evenly the
kernel spread the connections).

    python bench/gateway_workers.py [--rounds 4] [--seconds 4] [--connections 1 16 64]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).parent))

from ketch_gateway import config_text, model_table, start_gateway, version_table, write_config
from ketch_gateway.workers.pool import READY_PREFIX

from peers import body, train
from wrk_load import LoadResult, run_wrk

SETUPS = {"1 process": (1, "shared"), "2 workers, shared": (2, "shared")}
SETUPS["2 workers, reuseport"] = (2, "reuseport")
OIP_PATH = "/v2/models/digits/infer"


@dataclass
class Served:
    """A running gateway under test: where it listens and the pids whose CPU is its own."""

    url: str
    workers: list[int]
    results: dict[int, list[LoadResult]] = field(default_factory=dict)
    batch_rows: dict[int, list[float]] = field(default_factory=dict)
    cpu_split: dict[int, list[float]] = field(default_factory=dict)


@contextlib.contextmanager
def redis(folder: Path) -> Iterator[str]:
    """A Redis server on a Unix socket in ``folder``, without persistence; its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit(
            "bench/gateway_workers.py needs redis-server: apt-get install redis-server"
        )
    sock = folder / "redis.sock"
    command = [binary, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield f"unix://{sock}"
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def gateway(folder: Path, model: Path, state: str, workers: int, socket: str) -> Iterator[Served]:
    """A gateway with ``workers`` workers and one managed wrapper of ``model``."""
    settings = {"log_level": "warning", "state": state, "workers": workers}
    text = config_text(
        gateway=settings | {"worker_socket": socket},
        models=[model_table("digits", version_table("sklearn", model))],
    )
    home = folder / f"ketch-{workers}-{socket}"
    home.mkdir()
    config = write_config(home, text)
    with start_gateway(config, echo_stderr=False) as process:
        ready = json.loads(process.ready_line[len(READY_PREFIX) :])
        yield Served(process.url, ready.get("workers", [ready["pid"]]))


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch_totals(url: str) -> tuple[float, float]:
    """Rows batched and batches sent so far, summed over the gateway's workers."""
    rows = batches = 0.0
    text = httpx.get(f"{url}/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "ketch_batch_size_rows_sum":
                rows += sample.value
            elif sample.name == "ketch_batch_size_rows_count":
                batches += sample.value
    return rows, batches


def measure(served: Served, bodies: list[bytes], connections: int, seconds: float) -> None:
    """One wrk run against ``served``, with its batch sizes and its workers' CPU split."""
    rows_before, batches_before = batch_totals(served.url)
    cpu_before = [cpu_seconds(pid) for pid in served.workers]
    result = run_wrk(served.url + OIP_PATH, bodies, connections, seconds)
    cpu = [
        cpu_seconds(pid) - before for pid, before in zip(served.workers, cpu_before, strict=True)
    ]
    rows, batches = batch_totals(served.url)
    served.results.setdefault(connections, []).append(result)
    mean = (rows - rows_before) / max(batches - batches_before, 1)
    served.batch_rows.setdefault(connections, []).append(mean)
    served.cpu_split.setdefault(connections, []).append(max(cpu) / max(sum(cpu), 1e-9))


def main(argv: list[str] | None = None) -> int:
    """Load the three gateways in interleaved rounds; print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16, 64])
    options = parser.parse_args(argv)
    print(f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    print(f"{os.cpu_count()} CPUs")
    with (
        tempfile.TemporaryDirectory(prefix="ketch-workers-") as name,
        contextlib.ExitStack() as stack,
    ):
        folder = Path(name)
        paths, rows, _ = train(folder)
        model = paths["logreg"].with_suffix(".skops")
        state = stack.enter_context(redis(folder))
        served = {
            label: stack.enter_context(gateway(folder, model, state, workers, socket))
            for label, (workers, socket) in SETUPS.items()
        }
        bodies = [body(values, "oip") for values in rows]
        for running in served.values():
            run_wrk(running.url + OIP_PATH, bodies, max(options.connections), 2.0)
        order = list(served.values())
        for connections in options.connections:
            for round_index in range(options.rounds):
                shift = round_index % len(order)  # each goes first in turn
                for running in order[shift:] + order[:shift]:
                    measure(running, bodies, connections, options.seconds)
    report(served, options)
    print(f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    return 0


def report(served: dict[str, Served], options: argparse.Namespace) -> None:
    """The table: medians over the rounds, and each setup's ratio to one process."""
    print(f"\nmedians of {options.rounds} interleaved rounds of {options.seconds:g} s")
    print(
        "| setup | connections | req/s | ratio | p50 ms | p99 ms | p99 ratio "
        "| rows per batch | busiest worker's CPU share |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    one = served["1 process"]
    for connections in options.connections:
        for label, running in served.items():
            results = running.results[connections]
            rate = statistics.median(r.throughput for r in results)
            p50 = statistics.median(r.p50_ms for r in results)
            p99 = statistics.median(r.p99_ms for r in results)
            base = one.results[connections]
            base_rate = statistics.median(r.throughput for r in base)
            base_p99 = statistics.median(r.p99_ms for r in base)
            batch = statistics.median(running.batch_rows[connections])
            share = statistics.median(running.cpu_split[connections])
            errors = sum(r.errors for r in results)
            split = "" if len(running.workers) == 1 else f"{share:.0%}"
            print(
                f"| {label} | {connections} | {rate:,.0f} | {rate / base_rate:.2f} | {p50:.2f} "
                f"| {p99:.1f} | {p99 / base_p99:.2f} | {batch:.1f} | {split} |"
                + (f" {errors} errors" if errors else "")
            )


if __name__ == "__main__":
    sys.exit(main())
