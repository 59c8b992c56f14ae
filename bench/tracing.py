"""What tracing costs the gateway: its throughput with tracing off, on (no-op), on (OTLP).

Three ``ketch gateway`` processes serve the same digits classifier (each with the
``ketch serve`` wrapper it starts), differing only in tracing:

- ``off``: no ``[tracing]`` table (the default);
- ``noop``: tracing on at the sampling ratio, spans made, linked and propagated to
  the wrapper, then dropped (``exporter = "none"``);
- ``otlp``: tracing on at the sampling ratio, spans exported over OTLP/gRPC, by the
  gateway and by its wrapper, to a collector in this process.

A closed-loop load generator in a process of its own (``gateway_overhead.py``'s)
sends one digit per request to ``/apps/digits/predict`` (200 different rows, so
every request is batched and sent) from N clients. The modes are measured in
turns, round after round, so that drift of a shared machine spreads over all of
them; the table gives each mode's median over the rounds, and its throughput as
a share of ``off``'s. The goal is a loss under 10% at a 10% sampling ratio.

    python bench/tracing.py [--seconds 5] [--rounds 3] [--clients 32] [--ratio 0.1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from gateway_overhead import measure

from ketch_conformance.otlp_collector import SpanCollector
from ketch_gateway import (
    GatewayProcess,
    app_table,
    config_text,
    model_table,
    start_gateway,
    version_table,
    write_config,
)

MODES = ("off", "noop", "otlp")


def _model(folder: Path) -> list[bytes]:
    """The digits model in ``folder``; request bodies of 200 different rows."""
    import skops.io
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    rows, labels = load_digits(return_X_y=True)
    rows = rows / 16.0
    skops.io.dump(LogisticRegression(max_iter=2000).fit(rows, labels), folder / "digits.skops")
    return [json.dumps({"input": row.tolist()}).encode() for row in rows[:200]]


def _config(folder: Path, mode: str, ratio: float, endpoint: str) -> Path:
    tracing = {
        "off": None,
        "noop": {"exporter": "none", "sample_ratio": ratio},
        "otlp": {"endpoint": endpoint, "sample_ratio": ratio},
    }[mode]
    text = config_text(
        gateway={"log_level": "warning", "state": f"{mode}-state.sqlite"},
        tracing=tracing,
        models=[model_table("digits", version_table("sklearn", "digits.skops"))],
        apps=[app_table("digits", ["digits"], latency_objective_ms=1000)],
    )
    return write_config(folder, text, f"{mode}.toml")


@contextmanager
def _gateways(
    folder: Path, ratio: float, collector: SpanCollector
) -> Iterator[dict[str, GatewayProcess]]:
    with ExitStack() as stack:
        yield {
            mode: stack.enter_context(
                start_gateway(_config(folder, mode, ratio, collector.endpoint), echo_stderr=False)
            )
            for mode in MODES
        }


def main() -> int:
    """Run the benchmark and print the table (numbers are reported, never asserted)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--ratio", type=float, default=0.1, help="the sampling ratio when on")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    with (
        tempfile.TemporaryDirectory(prefix="ketch-bench-") as scratch,
        SpanCollector() as collector,
    ):
        folder = Path(scratch)
        bodies = _model(folder)
        with _gateways(folder, args.ratio, collector) as gateways:
            for _ in range(args.rounds):
                for mode in MODES:
                    url = f"{gateways[mode].url}/apps/digits/predict"
                    runs[mode].append(measure("http", url, bodies, args.clients, args.seconds))
        spans = collector.spans()
    baseline = statistics.median(run["throughput"] for run in runs["off"])
    print(
        f"\nclosed loop, {args.clients} clients, one digit per request to /apps/digits/predict, "
        f"{args.rounds} rounds of {args.seconds:g} s per mode, sampling ratio {args.ratio:g}"
    )
    print(f"{'mode':>5} {'req/s':>8} {'vs off':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
    for mode in MODES:
        rate = statistics.median(run["throughput"] for run in runs[mode])
        p50 = statistics.median(run["p50_ms"] for run in runs[mode])
        p99 = statistics.median(run["p99_ms"] for run in runs[mode])
        errors = sum(run["errors"] for run in runs[mode])
        print(f"{mode:>5} {rate:>8.0f} {rate / baseline:>7.3f} {p50:>7.2f} {p99:>7.2f} {errors:>6}")
    rounds = ", ".join(
        f"{mode} " + "/".join(f"{run['throughput']:.0f}" for run in runs[mode]) for mode in MODES
    )
    print(f"\nper round (req/s): {rounds}")
    services: dict[str, int] = {}
    for span in spans:
        services[span.service] = services.get(span.service, 0) + 1
    print(f"spans the collector received: {services}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
