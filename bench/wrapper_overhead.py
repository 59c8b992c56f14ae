"""What the gRPC wrapper adds to a model call, against the transport's own floor.

For each scenario (a plugin and a model) and batch size, measured side by side in
one run, in interleaved rounds so that machine noise hits every column alike:

- ``in-process``: ``ketch_batch_predict`` called directly through the plugin manager;
- ``wrapper``: the same rows as one ModelInfer call to a ``ketch serve`` process, sent as
  pre-encoded request bytes (the client does no protobuf or numpy work);
- ``echo``: a bare gRPC server in its own process that receives the same request bytes
  and answers with as many bytes as the wrapper's response, doing nothing else: the
  transport's floor;
- ``replay``: a ``ketch serve`` process whose plugin answers from outputs computed at
  load time: the wrapper runtime's own work (decode, validate, pluggy, encode) without
  the framework's. ``replay - echo`` is what Ketch's code costs inside a call, and
  ``wrapper - replay`` what the framework costs inside the server process;
- ``client``: the same call through ``ketch.WrapperClient`` (numpy in, numpy out), for
  reference;
- ``baseline`` (with ``--baseline REV``): the same call to a ``ketch serve`` running the
  SDK and plugins as of a git revision of this checkout, so that a change to the wrapper
  is measured against its own past in the same run (an A/B);
- ``after I/O``: the in-process call again, each one timed right after an echo round trip,
  as a server meets it: caches and branch predictors no longer hold the framework's code
  and data, so a framework costs more per call than in a tight loop. ``after I/O -
  in-process`` is that penalty; it explains part of ``wrapper - in-process`` that no
  server code can remove (a diagnostic only: the targets use the tight loop).

Scenarios (a plugin, a model, rows) live in ``overhead_scenarios_<plugin>.py`` beside
this file; each defines ``SCENARIOS``, a mapping from a name to a function that builds
the scenario's model in a temporary folder.

The wrapper's added cost is ``wrapper - in-process``; the targets are
``added <= 1.25 x echo`` at every batch size and ``added <= 0.5 ms`` at batch 1.
Also reported: the gRPC path's throughput at the largest batch as a share of
in-process throughput (``in-process / wrapper``, target at least 0.8), and the
wrapper's start-up time, from starting ``ketch serve`` to its ready line.

    python bench/wrapper_overhead.py                  # all scenarios
    python bench/wrapper_overhead.py --scenario sklearn-logreg
    python bench/wrapper_overhead.py --rounds 5 --calls 100
    python bench/wrapper_overhead.py --scenario torch-mlp-export --scenario onnx-mlp
    python bench/wrapper_overhead.py --scenario torch-mlp-torchscript --baseline main
    python bench/wrapper_overhead.py --scenario torch-mlp-torchscript --baseline HEAD \
        --serve-arg=--cpus=1     # the same code, pinned (wrapper and replay) against not

Scenarios that serve one model in several engines (``family``) are also compared
side by side at the end: onnxruntime against PyTorch's fastest format, in process
and through ``ketch serve``, with each engine's throughput and start-up time.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from ketch import ModelSpec, Signature, WrapperClient, hookimpl, select_framework, start_wrapper
from ketch.wire import infer_request

from bench_common import BATCH_SIZES, Scenario

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent
ADDED_OVER_ECHO_TARGET = 1.25
ADDED_AT_BATCH_1_TARGET_MS = 0.5
THROUGHPUT_SHARE_TARGET = 0.8
STARTUP_RUNS = 3


def load_scenarios() -> dict[str, Callable[[Path], Scenario]]:
    """Every scenario that the ``overhead_scenarios_*.py`` modules beside this file define."""
    found: dict[str, Callable[[Path], Scenario]] = {}
    for module_path in sorted(Path(__file__).parent.glob("overhead_scenarios_*.py")):
        module = importlib.import_module(module_path.stem)
        found.update(module.SCENARIOS)
    return found


@dataclass(frozen=True)
class Replay:
    """Outputs computed once by the real plugin, sliced to each batch's row count."""

    signature: Signature
    outputs: Mapping[str, np.ndarray]


class ReplayPlugin:
    """A framework plugin that answers from precomputed outputs (options ``plugin``, ``rows``)."""

    @hookimpl
    def ketch_load(self, spec: ModelSpec) -> Replay:
        """Load the model with the real plugin and predict the saved rows once."""
        real = select_framework(spec.options["plugin"], autoload=False)
        options = {k: v for k, v in spec.options.items() if k not in ("plugin", "rows")}
        model = real.place(real.load(ModelSpec(spec.path, spec.name, options=options)), "cpu")
        with np.load(spec.options["rows"]) as saved:
            rows = {name: saved[name] for name in saved.files}
        return Replay(real.signature(model), dict(real.batch_predict(model, rows)))

    @hookimpl
    def ketch_place(self, model: Replay, device: str) -> Replay:
        """Nothing to move."""
        return model

    @hookimpl
    def ketch_signature(self, model: Replay) -> Signature:
        """The real model's signature."""
        return model.signature

    @hookimpl
    def ketch_batch_predict(
        self, model: Replay, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """The first N precomputed rows for a batch of N."""
        rows = len(next(iter(inputs.values())))
        return {name: array[:rows] for name, array in model.outputs.items()}


replay = ReplayPlugin()


def serve_echo(response_size: int) -> None:
    """Run the echo server: answer every ModelInfer with ``response_size`` bytes."""
    reply = b"\x00" * response_size

    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        return reply

    handler = grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService",
        {"ModelInfer": grpc.unary_unary_rpc_method_handler(echo)},
    )
    options = [
        ("grpc.max_receive_message_length", 256 * 1024 * 1024),
        ("grpc.max_send_message_length", 256 * 1024 * 1024),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.server(ThreadPoolExecutor(max_workers=16), handlers=[handler], options=options)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"127.0.0.1:{port}", flush=True)
    server.wait_for_termination()


@contextmanager
def echo_server(response_size: int) -> Iterator[str]:
    """An echo server process answering ``response_size`` bytes; its address."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--echo-server", str(response_size)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def raw_caller(address: str) -> tuple[grpc.Channel, Callable[[bytes], bytes]]:
    """A channel and a ModelInfer call that sends and receives bytes as they are."""
    channel = grpc.insecure_channel(
        address,
        options=[
            ("grpc.max_receive_message_length", 256 * 1024 * 1024),
            ("grpc.max_send_message_length", 256 * 1024 * 1024),
        ],
    )
    call = channel.unary_unary(MODEL_INFER, request_serializer=None, response_deserializer=None)

    def send(payload: bytes) -> bytes:
        reply: bytes = call(payload, timeout=60)
        return reply

    return channel, send


@contextmanager
def sources_at(revision: str | None) -> Iterator[dict[str, str]]:
    """The environment that runs ``ketch serve`` on the SDK and plugins as of ``revision``.

    They are exported with ``git archive`` (the checkout is left as it is) and put first
    on ``PYTHONPATH``; the installed entry points find the plugins' modules there.
    """
    if revision is None:
        yield {}
        return
    tree = Path(tempfile.mkdtemp(prefix="ketch-wrapper-baseline-"))
    try:
        folders = ["sdk/src", *(str(p.relative_to(ROOT)) for p in ROOT.glob("plugins/*/src"))]
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", revision, *folders],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        yield {"PYTHONPATH": os.pathsep.join(str(tree / folder) for folder in folders)}
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def time_calls(
    function: Callable[[], object], calls: int, before: Callable[[], object] | None = None
) -> list[float]:
    """Seconds per call, one sample per call; ``before`` runs untimed ahead of each call."""
    samples = []
    for _ in range(calls):
        if before is not None:
            before()
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return samples


def measure_startup(scenario: Scenario, runs: int = STARTUP_RUNS) -> float:
    """The median seconds from starting ``ketch serve`` to its ready line, over ``runs`` starts."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        with start_wrapper(
            scenario.plugin, scenario.model_path, options=scenario.options, echo_stderr=False
        ):
            samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def measure(
    scenario: Scenario,
    rounds: int,
    calls: int,
    baseline: str | None = None,
    serve_args: Sequence[str] = (),
) -> list[dict[str, float]]:
    """The median milliseconds per call of each column, per batch size.

    With ``baseline`` (a git revision), also the column of a wrapper as of that revision.
    ``serve_args`` go to the ``ketch serve`` command lines of the wrapper and the replay
    (not the baseline's).
    """
    framework = select_framework(scenario.plugin)
    model = framework.load(ModelSpec.from_path(scenario.model_path, options=scenario.options))
    model = framework.place(model, "cpu")
    table = []
    rows_file = scenario.model_path.with_suffix(".rows.npz")
    saved: dict[str, Any] = {name: rows[: max(BATCH_SIZES)] for name, rows in scenario.rows.items()}
    np.savez(rows_file, **saved)
    replay_options = {**scenario.options, "plugin": scenario.plugin, "rows": str(rows_file)}
    with (
        start_wrapper(
            scenario.plugin,
            scenario.model_path,
            options=scenario.options,
            echo_stderr=False,
            extra_args=serve_args,
        ) as wrapper,
        start_wrapper(
            "wrapper_overhead:replay",
            scenario.model_path,
            options=replay_options,
            env={"PYTHONPATH": str(Path(__file__).parent)},
            echo_stderr=False,
            extra_args=serve_args,
        ) as replay_wrapper,
        ExitStack() as stack,
    ):
        wrapper_channel, wrapper_call = raw_caller(wrapper.address)
        replay_channel, replay_call = raw_caller(replay_wrapper.address)
        baseline_call = None
        if baseline is not None:
            baseline_env = stack.enter_context(sources_at(baseline))
            baseline_wrapper = stack.enter_context(
                start_wrapper(
                    scenario.plugin,
                    scenario.model_path,
                    options=scenario.options,
                    env=baseline_env,
                    echo_stderr=False,
                )
            )
            baseline_channel, baseline_call = raw_caller(baseline_wrapper.address)
            stack.callback(baseline_channel.close)
        client = WrapperClient(wrapper.address)
        for batch in BATCH_SIZES:
            inputs = {name: rows[:batch] for name, rows in scenario.rows.items()}
            payload = infer_request(inputs, model=wrapper.ready.model).SerializeToString()
            response_size = len(wrapper_call(payload))
            with echo_server(response_size) as echo_address:
                echo_channel, echo_call = raw_caller(echo_address)
                columns: dict[str, Callable[[], object]] = {
                    "in-process": partial(framework.batch_predict, model, inputs),
                    "wrapper": partial(wrapper_call, payload),
                    "replay": partial(replay_call, payload),
                    "echo": partial(echo_call, payload),
                    "client": partial(client.infer, inputs),
                }
                if baseline_call is not None:
                    columns["baseline"] = partial(baseline_call, payload)
                samples: dict[str, list[float]] = {name: [] for name in columns}
                samples["after I/O"] = []
                for function in columns.values():
                    time_calls(function, max(calls // 5, 5))
                for _ in range(rounds):
                    for name, function in columns.items():
                        samples[name] += time_calls(function, calls)
                    samples["after I/O"] += time_calls(
                        columns["in-process"], calls, before=columns["echo"]
                    )
                echo_channel.close()
            row = {name: statistics.median(values) * 1000 for name, values in samples.items()}
            row["batch"] = batch
            row["request_bytes"] = len(payload)
            row["response_bytes"] = response_size
            table.append(row)
        client.close()
        wrapper_channel.close()
        replay_channel.close()
    return table


def _baseline_columns(row: Mapping[str, float]) -> str:
    """The baseline wrapper's time, its added cost over echo, and wrapper / baseline."""
    if "baseline" not in row:
        return ""
    added = (row["baseline"] - row["in-process"]) / row["echo"]
    return f" {row['baseline']:>8.3f} {added:>12.2f} {row['wrapper'] / row['baseline']:>5.2f}"


def report(scenario: Scenario, table: list[dict[str, float]], startup: float) -> bool:
    """Print the table, the ratios and the start-up time; whether every target is met."""
    print(f"\n{scenario.name} (median ms per call)")
    header = (
        f"{'batch':>5} {'in-process':>10} {'wrapper':>8} {'added':>7} {'echo':>7} "
        f"{'added/echo':>10} {'replay':>7} {'ketch':>6} {'server fw':>9} {'after I/O':>9} "
        f"{'client':>7} {'req KiB':>8}"
    )
    if "baseline" in table[0]:
        header += f" {'baseline':>8} {'b.added/echo':>12} {'A/B':>5}"
    print(header)
    met = True
    for row in table:
        added = row["wrapper"] - row["in-process"]
        ratio = added / row["echo"]
        met &= ratio <= ADDED_OVER_ECHO_TARGET
        if row["batch"] == 1:
            met &= added <= ADDED_AT_BATCH_1_TARGET_MS
        print(
            f"{row['batch']:>5.0f} {row['in-process']:>10.3f} {row['wrapper']:>8.3f} "
            f"{added:>7.3f} {row['echo']:>7.3f} {ratio:>10.2f} {row['replay']:>7.3f} "
            f"{row['replay'] - row['echo']:>6.3f} {row['wrapper'] - row['replay']:>9.3f} "
            f"{row['after I/O']:>9.3f} {row['client']:>7.3f} {row['request_bytes'] / 1024:>8.1f}"
            + _baseline_columns(row)
        )
    print(
        "added = wrapper - in-process; ketch = replay - echo (Ketch's runtime inside a call); "
        "server fw = wrapper - replay (the framework inside the server); after I/O = the "
        "in-process call timed right after an echo round trip (cold caches, a diagnostic)"
        + (
            "; baseline = the wrapper as of --baseline, A/B = wrapper / baseline"
            if "baseline" in table[0]
            else ""
        )
    )
    print(
        f"targets: added/echo <= {ADDED_OVER_ECHO_TARGET} at every batch size, added <= "
        f"{ADDED_AT_BATCH_1_TARGET_MS} ms at batch 1: {'met' if met else 'MISSED'}"
    )
    largest = table[-1]
    share = largest["in-process"] / largest["wrapper"]
    print(
        f"throughput over gRPC at batch {largest['batch']:.0f}: {share:.2f} of in-process "
        f"(target >= {THROUGHPUT_SHARE_TARGET}: "
        f"{'met' if share >= THROUGHPUT_SHARE_TARGET else 'MISSED'})"
    )
    print(f"wrapper start-up, ketch serve to ready (median of {STARTUP_RUNS}): {startup:.2f} s")
    return met


ONNX_PLUGIN = "onnx"


def _engine_row(result: Mapping[str, Any], batch: int) -> Mapping[str, float]:
    return next(row for row in result["rows"] if row["batch"] == batch)


def compare_engines(results: Mapping[str, Mapping[str, Any]]) -> None:
    """For each model served by several engines, their numbers side by side, and the goals.

    The goals (issue 21): onnxruntime at or under PyTorch's latency at every batch
    size, in process and through ``ketch serve``; the wrapper's added cost over the
    echo floor no worse for ONNX than for the other formats.
    """
    families: dict[str, list[Mapping[str, Any]]] = {}
    for result in results.values():
        if result.get("family"):
            families.setdefault(result["family"], []).append(result)
    for family, members in families.items():
        onnx = [m for m in members if m["plugin"] == ONNX_PLUGIN]
        others = [m for m in members if m["plugin"] != ONNX_PLUGIN]
        if not onnx or not others:
            continue
        print(f"\n{family}: engines side by side (median ms per call; rows/s through ketch serve)")
        width = max(len(member["scenario"]) for member in members)
        print(
            f"{'engine':<{width}} {'batch':>5} {'in-process':>10} {'wrapper':>8} {'rows/s':>9} "
            f"{'added/echo':>10} {'start-up s':>10}"
        )
        batches = [row["batch"] for row in members[0]["rows"]]
        for member in members:
            for batch in batches:
                row = _engine_row(member, batch)
                added = (row["wrapper"] - row["in-process"]) / row["echo"]
                print(
                    f"{member['scenario']:<{width}} {batch:>5.0f} {row['in-process']:>10.3f} "
                    f"{row['wrapper']:>8.3f} {batch / row['wrapper'] * 1000:>9.0f} "
                    f"{added:>10.2f} {member['startup_s']:>10.2f}"
                )
        for column, where in (("in-process", "in process"), ("wrapper", "through ketch serve")):
            misses = [
                f"batch {batch:.0f}: {_engine_row(onnx[0], batch)[column]:.3f} ms against "
                f"{min(_engine_row(m, batch)[column] for m in others):.3f}"
                for batch in batches
                if _engine_row(onnx[0], batch)[column]
                > min(_engine_row(m, batch)[column] for m in others)
            ]
            verdict = "met" if not misses else "MISSED (" + "; ".join(misses) + ")"
            print(f"goal: onnxruntime at or under PyTorch's fastest {where}: {verdict}")

        def worst_added(member: Mapping[str, Any]) -> float:
            rows: list[Mapping[str, float]] = member["rows"]
            return max((row["wrapper"] - row["in-process"]) / row["echo"] for row in rows)

        onnx_added, other_added = worst_added(onnx[0]), max(worst_added(m) for m in others)
        print(
            f"goal: the wrapper's added cost over echo for ONNX ({onnx_added:.2f} at worst) no "
            f"worse than the other formats' ({other_added:.2f}): "
            f"{'met' if onnx_added <= other_added else 'MISSED'}"
        )


def main() -> int:
    """Run the benchmark; exit 0 whatever the numbers (they are reported, not asserted)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    scenarios = load_scenarios()
    parser.add_argument("--scenario", choices=sorted(scenarios), action="append")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--calls", type=int, default=200, help="calls per column per round")
    parser.add_argument(
        "--baseline", help="also measure a wrapper as of this git revision (an A/B column)"
    )
    parser.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        help="a ketch serve argument for the wrapper and the replay, not the baseline "
        "(repeatable; write --serve-arg=--cpus=1)",
    )
    parser.add_argument("--echo-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_server is not None:
        serve_echo(args.echo_server)
        return 0
    results = {}
    with tempfile.TemporaryDirectory(prefix="ketch-bench-") as folder:
        for key in args.scenario or sorted(scenarios):
            scenario = scenarios[key](Path(folder))
            table = measure(scenario, args.rounds, args.calls, args.baseline, args.serve_arg)
            startup = measure_startup(scenario)
            results[key] = {
                "scenario": scenario.name,
                "plugin": scenario.plugin,
                "family": scenario.family,
                "met": report(scenario, table, startup),
                "startup_s": startup,
                "rows": table,
            }
    compare_engines(results)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "wrapper_overhead.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
