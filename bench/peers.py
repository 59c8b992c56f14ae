"""Ketch's gateway against the systems users would pick instead, side by side in one run.

The same scikit-learn model (digits LogisticRegression, and an RBF SVC where batching
matters) is served by Ketch's gateway and by MLServer (adaptive batching off and on),
LitServe, Ray Serve (``@serve.batch``, behind its own proxy and behind HAProxy),
BentoML (batchable API) and PyTriton (Triton's server), each configured for batching as
its documentation recommends (``peer_targets.py``). Each peer is installed on first use
into its own virtualenv under a cache folder (``peer_envs.py``), never into Ketch's.
Two bare-HTTP rows (Starlette answering a constant under uvicorn and under granian)
frame the table: no Python server answers with less work.

Every system is first checked: each of ``--check`` digits, sent one per request, must
come back as the class the model predicts in process. Then one load generator (wrk, a
closed loop; ``wrk_load.py``) drives it at 1, 16 and 64 connections, one digit per
request, cycling through the digits. The table gives throughput, p50 and p99, and each
system's throughput and p99 as ratios to Ketch's in the same run. A system that fails to
install, start or answer correctly gets a row saying so; the run goes on.

    python bench/peers.py [--seconds 10] [--connections 1 16 64] [--models logreg svc]
                          [--only ketch mlserver ...] [--skip ray ...] [--baseline REV]

``--baseline REV`` adds a row for Ketch's gateway as of a git revision, measured in the
same run: the A/B comparison for a change to the gateway.

Not run by CI (it installs several large packages); needs ``wrk`` (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from peer_targets import TARGETS, Running, Target, ketch_at
from wrk_load import LoadResult, require_wrk, run_wrk

RESULTS = Path(__file__).parent / "results"
MODELS = ("logreg", "svc")
BODY_ROWS = 256
"""Distinct digits that the load cycles through."""


@dataclass
class Row:
    """One system serving one model: its loads, or why it has none."""

    target: str
    kind: str
    settings: str
    model: str
    loads: dict[int, LoadResult] = field(default_factory=dict)
    failure: str = ""


def train(folder: Path) -> tuple[dict[str, Path], np.ndarray, dict[str, np.ndarray]]:
    """The two models, each saved as a pickle (for peers) and skops (for Ketch); rows; labels."""
    import joblib
    import skops.io
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    rows, labels = load_digits(return_X_y=True)
    rows = rows / 16.0
    estimators = {
        "logreg": LogisticRegression(max_iter=2000),
        "svc": SVC(kernel="rbf", gamma=0.05),
    }
    paths: dict[str, Path] = {}
    expected: dict[str, np.ndarray] = {}
    for name, estimator in estimators.items():
        estimator.fit(rows, labels)
        paths[name] = folder / f"{name}.pkl"
        joblib.dump(estimator, paths[name])
        skops.io.dump(estimator, folder / f"{name}.skops")
        expected[name] = estimator.predict(rows[:BODY_ROWS])
    return paths, rows[:BODY_ROWS], expected


def body(row: np.ndarray, style: str) -> bytes:
    """One request's body carrying ``row``, in the shape the system reads."""
    values = [float(value) for value in row]
    if style == "bentoml":
        return json.dumps({"inputs": [values]}).encode()
    tensor = {"name": "input", "shape": [1, len(values)], "datatype": "FP64", "data": values}
    return json.dumps({"inputs": [tensor]}).encode()


def label_in(answer: Any) -> int:
    """The one class in an answer: an OIP response, or BentoML's bare list."""
    if isinstance(answer, dict):
        data = answer["outputs"][0]["data"]
        return int(np.asarray(data).reshape(-1)[0])
    return int(np.asarray(answer).reshape(-1)[0])


def check_answers(running: Running, rows: np.ndarray, expected: np.ndarray, count: int) -> None:
    """RuntimeError unless the first ``count`` rows come back as the model's classes."""
    with httpx.Client(timeout=30) as client:
        for index in range(min(count, len(rows))):
            response = client.post(
                running.url,
                content=body(rows[index], running.body_style),
                headers={"Content-Type": "application/json"},
            )
            if response.status_code != 200:
                raise RuntimeError(
                    f"row {index}: HTTP {response.status_code}: {response.text[:200]}"
                )
            got = label_in(response.json())
            if got != int(expected[index]):
                raise RuntimeError(f"row {index}: answered {got}, the model says {expected[index]}")


def measure(  # noqa: PLR0917 (one system, one model, and what every measurement shares)
    target: Target,
    model: str,
    folder: Path,
    paths: dict[str, Path],
    rows: np.ndarray,
    expected: np.ndarray,
    options: argparse.Namespace,
) -> Row:
    """Start ``target`` with ``model``, check it, load it at each connection count."""
    row = Row(target.name, target.kind, target.settings, model)
    print(f"== {target.name} / {model}", file=sys.stderr, flush=True)
    try:
        with target.start(folder, paths[model]) as running:
            if running.body_style != "constant":
                check_answers(running, rows, expected, options.check)
            bodies = [body(values, running.body_style) for values in rows]
            run_wrk(running.url, bodies, max(options.connections), options.warmup)
            for connections in options.connections:
                result = run_wrk(running.url, bodies, connections, options.seconds)
                row.loads[connections] = result
                print(
                    f"   {connections:>3} conn: {result.throughput:8.0f} req/s "
                    f"p50 {result.p50_ms:6.2f} ms p99 {result.p99_ms:7.2f} ms "
                    f"errors {result.errors}",
                    file=sys.stderr,
                    flush=True,
                )
    except Exception as error:  # a peer's failure is a row of the table, not the end of the run
        if options.verbose:
            traceback.print_exc()
        row.failure = f"{type(error).__name__}: {str(error).strip().splitlines()[-1][:160]}"
        print(f"   failed: {row.failure}", file=sys.stderr, flush=True)
    return row


def table(rows: list[Row], connections: list[int]) -> str:
    """The Markdown table: per connection count, req/s, p50/p99, and ratios to Ketch."""
    header = ["model", "system", "batching"]
    for count in connections:
        header += [f"{count} conn req/s", "x Ketch", "p50 / p99 ms", "p99 x Ketch"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        ketch = next((r for r in rows if r.model == row.model and r.target == "ketch"), None)
        cells = [row.model, row.target, row.settings]
        if row.failure:
            cells += [f"**failed**: {row.failure}"] + [""] * (4 * len(connections) - 1)
        for count in connections if not row.failure else []:
            load = row.loads.get(count)
            base = ketch.loads.get(count) if ketch else None
            if load is None:
                cells += ["", "", "", ""]
                continue
            errors = f" ({load.errors} errors)" if load.errors else ""
            cells += [
                f"{load.throughput:,.0f}{errors}",
                f"{load.throughput / base.throughput:.2f}" if base and base.throughput else "",
                f"{load.p50_ms:.2f} / {load.p99_ms:.2f}",
                f"{load.p99_ms / base.p99_ms:.2f}" if base and base.p99_ms else "",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per connection count")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load, discarded")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--only", nargs="+", choices=list(TARGETS), help="these systems only")
    parser.add_argument("--skip", nargs="+", choices=list(TARGETS), default=[])
    parser.add_argument(
        "--baseline", help="also measure Ketch's gateway as of this git revision (A/B)"
    )
    parser.add_argument("--check", type=int, default=50, help="rows checked against the model")
    parser.add_argument("--verbose", action="store_true", help="print a failure's traceback")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Measure every chosen system with every chosen model; print and save the table."""
    options = parse_arguments(argv)
    require_wrk()
    chosen = [t for t in TARGETS.values() if (not options.only or t.name in options.only)]
    chosen = [t for t in chosen if t.name not in options.skip]
    if options.baseline:
        chosen.insert(
            next(i for i, t in enumerate(chosen) if t.kind != "ceiling"), ketch_at(options.baseline)
        )
    started = time.time()
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="ketch-peers-") as name:
        folder = Path(name)
        paths, bench_rows, expected = train(folder)
        for model in options.models:
            for target in chosen:
                if target.kind == "ceiling" and model != options.models[0]:
                    continue  # the ceiling answers a constant: the model does not change it
                rows.append(
                    measure(target, model, folder, paths, bench_rows, expected[model], options)
                )
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    report = table(rows, options.connections)
    print(report)
    print(f"\nload average before {' '.join(load_before)}, after {' '.join(load_after)}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"peers-{time.strftime('%Y%m%d-%H%M%S', time.localtime(started))}.json"
    with contextlib.suppress(OSError):
        out.write_text(
            json.dumps(
                {
                    "load_before": load_before,
                    "load_after": load_after,
                    "seconds": options.seconds,
                    "rows": [
                        {**asdict(row), "loads": {c: asdict(r) for c, r in row.loads.items()}}
                        for row in rows
                    ],
                },
                indent=2,
            )
        )
        print(f"saved {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
