"""Feedback-judged canaries, measured: a better, a worse and a slower digits model.

A baseline digits model (logistic regression on 300 rows) is rolled out over by
(a) a better canary (the same on 900 rows): it should reach 100% of traffic, after
the looks at 200, 400 and 800 canary examples; (b) a worse one (the better one
trained with the labels of 20% of the classes shuffled among all classes): it should
be rolled back while still at its first step (5%); (c) a slower one (the baseline
slowed by the pacing plugin): it should be rolled back on its p99.

Each scenario runs ``--runs`` times with seeds 0, 1, ...: each run is a fresh
gateway in process (its real predictor chain, state store and rollout controller)
over the models served in process through the sklearn plugin, with the traffic (a
seeded draw of held-out digits, each answered and then labelled by its query id)
and the split's draws seeded. The controller is ticked after every chunk of queries
rather than on its clock, so that a run is as fast as the models answer.
``--end-to-end`` adds one run of (a) and (b) through a real ``ketch gateway`` with
``ketch serve`` wrappers, over HTTP, started and judged by the gateway's own clock.

    python bench/rollout.py [--runs 20] [--end-to-end]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import httpx
import numpy as np
import skops.io
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway" / "tests"))
from in_process import LocalModels

from ketch_gateway import Gateway, parse_config, start_gateway
from ketch_gateway.correction.queries import Feedback, Query
from ketch_gateway.rollouts.judgement import bound_at, look_size

TRAIN = 900
STEPS = (0.05, 0.25, 0.5, 1.0)
MIN_FEEDBACK = 200
MARGIN = 0.01
MAX_P99_MS = 25.0
SLOW_DELAY_S = 0.05
CHUNK = 16
MOST_QUERIES = 60_000


@dataclass
class RunResult:
    """How one rollout ended."""

    outcome: str
    step: int
    canary_examples: int
    canary_requests: int
    queries: int
    reason: str


def train_models(
    folder: Path,
) -> tuple[dict[str, Path], np.ndarray, np.ndarray, dict[str, float]]:
    """The baseline, better and worse models (skops files), and the held-out digits."""
    rows, labels = load_digits(return_X_y=True)
    rows = rows / 16.0
    order = np.random.default_rng(0).permutation(len(labels))
    rows, labels = rows[order], labels[order]
    train_rows, train_labels = rows[:TRAIN], labels[:TRAIN]
    shuffled = train_labels.copy()
    rng = np.random.default_rng(1)
    affected = np.isin(shuffled, [3, 8])  # 20% of the classes
    shuffled[affected] = rng.integers(0, 10, affected.sum())
    fits = {
        "baseline": LogisticRegression(max_iter=3000).fit(train_rows[:300], train_labels[:300]),
        "better": LogisticRegression(max_iter=3000).fit(train_rows, train_labels),
        "worse": LogisticRegression(max_iter=3000).fit(train_rows, shuffled),
    }
    paths = {}
    for name, model in fits.items():
        paths[name] = folder / f"{name}.skops"
        skops.io.dump(model, paths[name])
    held_rows, held_labels = rows[TRAIN:], labels[TRAIN:]
    errors = {}
    for name, model in fits.items():
        errors[name] = float(np.mean(model.predict(held_rows) != held_labels))
        print(f"{name}: error rate {errors[name]:.4f} on the {len(held_labels)} held-out digits")
    return paths, held_rows, held_labels, errors


def gateway_toml(addresses: dict[str, str], rollout: str = "") -> str:
    """A gateway serving ``digits`` v1 (the baseline) and v2 (the canary)."""
    return f"""
[gateway]
admin_token = "bench-token"
state = "state.sqlite"

[[models]]
name = "digits"
version = "1"
{rollout}
  [[models.versions]]
  version = "1"
  addresses = ["{addresses["1"]}"]
  [[models.versions]]
  version = "2"
  addresses = ["{addresses["2"]}"]

[[apps]]
name = "digits"
models = ["digits"]
latency_objective_ms = 30000
default_output = -1
"""


def rollout_table(max_p99_ms: float | None) -> str:
    bound = f", max_p99_ms = {max_p99_ms}" if max_p99_ms is not None else ""
    return (
        f'rollout = {{to = "2", steps = {list(STEPS)}, min_feedback = {MIN_FEEDBACK}, '
        f"max_error_increase = {MARGIN}, step_every_s = 0{bound}}}"
    )


async def one_run(
    addresses: dict[str, str],
    models: LocalModels,
    rows: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int,
    max_p99_ms: float | None,
) -> RunResult:
    """One rollout in a fresh gateway in process, until it is decided."""
    random.seed(seed)
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as folder:
        text = gateway_toml(addresses, rollout_table(max_p99_ms))
        config = parse_config(text, str(Path(folder) / "ketch.toml"), Path(folder))
        gateway = Gateway(config, connect=models.connect)
        gateway.rollouts.tick_s = 3600.0  # ticked below, after each chunk
        await gateway.start()
        try:
            app = gateway.apps.find("digits")
            model = gateway.models.find("digits")
            routing = gateway.rollouts.routes["digits"]
            queries = 0
            while queries < MOST_QUERIES:
                picks = rng.integers(0, len(labels), CHUNK)
                await asyncio.gather(
                    *(ask(gateway, app, rows[i].tolist(), int(labels[i])) for i in picks)
                )
                queries += CHUNK
                await gateway.rollouts.tick()
                phase = routing.rollout
                assert phase is not None
                if not phase.active:
                    break
            status = await gateway.rollouts.describe("digits")
            window = routing.latency.get("2")
            phase = routing.rollout
            assert phase is not None
            return RunResult(
                phase.status,
                phase.step,
                status["rollout"]["feedback"]["canary"]["examples"],
                window.answered if window is not None else 0,
                queries,
                phase.reason or "",
            )
        finally:
            await gateway.stop()
            del model


async def ask(gateway: Gateway, app: Any, row: list[float], label: int) -> None:
    """One query, answered, then its label sent back by query id."""
    answer = await app.predict(Query([row]))
    example = Feedback(row, label, None, answer.query_id)
    await app.feedback(example)
    await gateway.rollouts.feedback(example)


def routing_cost(addresses: dict[str, str], folder: Path) -> None:
    """What routing adds to a request, in microseconds, side by side (one gateway, not started).

    The version a request gets without a split, with a split (a hash of the user id, or
    a random draw), and the note a watched model takes of each answer.
    """
    config = parse_config(gateway_toml(addresses), str(folder / "ketch.toml"), folder)
    gateway = Gateway(config)
    model = gateway.models.find("digits")
    count = 200_000

    def per_call(call: Any) -> float:
        started = time.perf_counter()
        for index in range(count):
            call(index)
        return (time.perf_counter() - started) / count * 1e6

    users = [f"user-{i}" for i in range(1000)]
    plain = per_call(lambda i: model.route(users[i % 1000]))
    gateway.rollouts.set_split("digits", {"1": 0.95, "2": 0.05})
    by_user = per_call(lambda i: model.route(users[i % 1000]))
    anonymous = per_call(lambda i: model.route(None))
    watch = model.watch
    assert watch is not None
    row, answers = [[0.0] * 64], [3]
    noted = per_call(
        lambda i: watch.answered("1", 0.001, query_id=f"q{i}", rows=row, answers=answers)
    )
    print(
        f"routing, per request: no split {plain:.2f} us; split by user {by_user:.2f} us "
        f"({by_user / plain:.1f}x); split, no user {anonymous:.2f} us; noting an answer "
        f"(latency window, query memory) {noted:.2f} us"
    )


def expected_examples(
    base_error: float, canary_error: float, baseline_shares: Sequence[float]
) -> str:
    """The looks a promotion needs, and each look's chance to pass at the true error rates.

    A look that does not pass is followed by the next (twice the examples) at the same step.
    """
    chances = []
    for look, baseline_share in enumerate(baseline_shares):
        canary_n = look_size(MIN_FEEDBACK, look)
        base_n = canary_n * baseline_share / (1 - baseline_share)
        se = (
            canary_error * (1 - canary_error) / canary_n + base_error * (1 - base_error) / base_n
        ) ** 0.5
        z = (canary_error - base_error - MARGIN) / se
        chances.append(NormalDist().cdf(-bound_at(look, 0.95) - z))
    needed = look_size(MIN_FEEDBACK, len(STEPS) - 2)
    return (
        f"{needed}, if the looks at 200/400/800 pass (their chances: "
        + ", ".join(f"{c:.3f}" for c in chances)
        + ")"
    )


def summarise(name: str, results: Sequence[RunResult], wrong: str) -> dict[str, Any]:
    """One line of the side-by-side table."""
    outcomes = [r.outcome for r in results]
    examples = [r.canary_examples for r in results]
    exposed = [r.canary_requests for r in results]
    shares = [r.canary_requests / r.queries for r in results]
    wrong_count = sum(r.outcome == wrong or (wrong == "step" and r.step > 0) for r in results)
    return {
        "scenario": name,
        "outcomes": {o: outcomes.count(o) for o in sorted(set(outcomes))},
        "examples_to_decide": {"median": statistics.median(examples), "max": max(examples)},
        "requests_to_canary": {"median": statistics.median(exposed), "max": max(exposed)},
        "canary_share_of_requests": {"median": statistics.median(shares), "max": max(shares)},
        "wrong_decisions": wrong_count,
        "sample_reason": results[-1].reason,
    }


async def in_process_runs(
    paths: dict[str, Path], rows: np.ndarray, labels: np.ndarray, runs: int
) -> list[dict[str, Any]]:
    """Every scenario, ``runs`` seeded times."""
    models = LocalModels()
    try:
        baseline = models.serve("digits", "sklearn", paths["baseline"])
        canaries = {
            "better": models.serve("digits", "sklearn", paths["better"]),
            "worse": models.serve("digits", "sklearn", paths["worse"]),
            "slower": models.serve(
                "digits", "sklearn", paths["baseline"], predict_delay=SLOW_DELAY_S
            ),
        }
        scenarios = [
            ("(a) better", "better", None, "rolled_back"),
            ("(b) worse", "worse", None, "step"),
            ("(c) slower", "slower", MAX_P99_MS, "promoted"),
        ]
        table = []
        for title, canary, bound, wrong in scenarios:
            addresses = {"1": baseline, "2": canaries[canary]}
            started = time.perf_counter()
            results = [
                await one_run(addresses, models, rows, labels, seed=seed, max_p99_ms=bound)
                for seed in range(runs)
            ]
            line = summarise(title, results, wrong)
            line["seconds"] = round(time.perf_counter() - started, 1)
            print(json.dumps(line), flush=True)
            table.append(line)
        return table
    finally:
        models.close()


def end_to_end(paths: dict[str, Path], rows: np.ndarray, labels: np.ndarray) -> list[str]:
    """One run of (a) and (b) through a real gateway and wrappers, over HTTP."""
    lines = []
    for title, canary in (("(a) better", "better"), ("(b) worse", "worse")):
        with tempfile.TemporaryDirectory() as folder:
            versions = "".join(
                f'\n  [[models.versions]]\n  version = "{v}"\n  plugin = "sklearn"\n'
                f'  path = "{paths[name]}"\n'
                for v, name in (("1", "baseline"), ("2", canary))
            )
            text = f"""
[gateway]
admin_token = "bench-token"
state = "state.sqlite"

[[models]]
name = "digits"
version = "1"
{versions}

[[apps]]
name = "digits"
models = ["digits"]
latency_objective_ms = 30000
default_output = -1
"""
            config = Path(folder) / "ketch.toml"
            config.write_text(text)
            with start_gateway(config) as process:
                lines.append(drive_over_http(process.url, title, rows, labels))
    return lines


def drive_over_http(url: str, title: str, rows: np.ndarray, labels: np.ndarray) -> str:
    auth = {"Authorization": "Bearer bench-token"}
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=30) as client:
        settings = {
            "to": "2",
            "steps": list(STEPS),
            "min_feedback": MIN_FEEDBACK,
            "max_error_increase": MARGIN,
            "step_every_s": 0,
        }
        client.post("/admin/models/digits/rollout", json=settings, headers=auth).raise_for_status()
        sent = 0
        status: dict[str, Any] = {}
        while sent < MOST_QUERIES:
            index = int(rng.integers(0, len(labels)))
            row = rows[index].tolist()
            answer = client.post("/apps/digits/predict", json={"input": row}).json()
            example = {"input": row, "label": int(labels[index]), "query_id": answer["query_id"]}
            client.post("/apps/digits/feedback", json=example).raise_for_status()
            sent += 1
            if sent % 50 == 0:
                status = client.get("/admin/models/digits/rollout", headers=auth).json()
                if status["rollout"]["status"] not in ("running", "paused"):
                    break
    rollout = status["rollout"]
    return (
        f"end to end {title}: {rollout['status']} at step {rollout['step']} after {sent} "
        f"queries, canary examples {rollout['feedback']['canary']['examples']}, "
        f"{time.perf_counter() - started:.0f} s; {rollout['reason'] or ''}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--end-to-end", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths, rows, labels, errors = train_models(Path(folder))
        routing_cost({"1": "127.0.0.1:1", "2": "127.0.0.1:2"}, Path(folder))
        shares = [1 - share for share in STEPS[:-1]]
        print(
            "(a) canary examples a promotion needs: at least "
            + expected_examples(errors["baseline"], errors["better"], shares)
        )
        table = asyncio.run(in_process_runs(paths, rows, labels, args.runs))
        print()
        print(
            "| scenario | outcomes | canary examples to decide (median, max) | requests to "
            "the canary (median, max) | canary share of requests (max) | wrong decisions |"
        )
        print("|---|---|---|---|---|---|")
        for line in table:
            print(
                f"| {line['scenario']} | {line['outcomes']} | "
                f"{line['examples_to_decide']['median']}, {line['examples_to_decide']['max']} | "
                f"{line['requests_to_canary']['median']}, {line['requests_to_canary']['max']} | "
                f"{line['canary_share_of_requests']['max']:.3f} | {line['wrong_decisions']} |"
            )
        if args.end_to_end:
            for summary in end_to_end(paths, rows, labels):
                print(summary)


if __name__ == "__main__":
    main()
