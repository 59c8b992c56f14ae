"""Ketch as a cluster, measured on the multi-host bed (network namespaces; needs root).

The bed of ``gateway/tests/cluster``: dnsmasq, Redis, three wrapper hosts running
``ketch serve`` on a digits LogisticRegression (found through DNS), and two gateway
hosts running ``ketch gateway`` on the same Redis. Every process shares this
machine's cores, so two gateways cannot double what one does when the machine is
the limit; the ratio says how much of the second gateway's capacity the cores left.

1. Throughput and p99, one gateway against two, over the same three wrappers:
   ``--clients`` closed-loop clients on ``/apps/digits/predict`` for ``--seconds``
   (after a warm-up), all on gateway-a, then split over both.
2. Admin propagation: a rollout or rollback made on gateway-a, timed until
   gateway-b answers ``/v2`` requests with the new version (``--changes`` times).
3. Failover after a cut link: under load (``/v2`` with a 10 s deadline, and an app
   with a 250 ms objective and a default output), wrapper-1's link is cut: how long
   until each gateway takes it out of rotation, how many requests failed (``/v2``)
   or fell back to the default (the app: their deadline passed while held by the
   cut host), until when, and how long after the link is back the host rejoins.
4. The store frozen (SIGSTOP) for ``--outage`` seconds: how long feedback takes to
   be refused (503), and predictions' latency meanwhile, on a ucb1 app.

    sudo .venv/bin/python bench/cluster.py [--seconds 15] [--clients 32]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "gateway" / "tests"))

from cluster.bed_services import cluster_unavailable_reason  # noqa: E402
from cluster.netbed import NetBed  # noqa: E402
from cluster.topology import (  # noqa: E402
    AUTH,
    PUBLISHED,
    Cluster,
    gateway_toml,
    replica_addresses,
    wait_until,
)
from cluster.traffic import ClosedLoop, Outcome, Request, percentile  # noqa: E402

RESULTS = Path(__file__).parent / "results"
WARM_UP_S = 3.0
TIGHT_OBJECTIVE_MS = 250
APPS = f"""
[[apps]]
name = "tight"
models = ["digits"]
latency_objective_ms = {TIGHT_OBJECTIVE_MS}
default_output = -1

[[apps]]
name = "bandit"
models = ["digits"]
latency_objective_ms = 1000
policy = "ucb1"
classes = 10
default_output = -1
"""


def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    rows, labels = load_digits(return_X_y=True)
    return rows / 16.0, labels


def train(folder: Path, rows: np.ndarray, labels: np.ndarray) -> Path:
    import skops.io
    from sklearn.linear_model import LogisticRegression

    path = folder / "digits.skops"
    skops.io.dump(LogisticRegression(max_iter=2000).fit(rows[:1000], labels[:1000]), path)
    return path


def infer_body(row: np.ndarray) -> dict[str, Any]:
    tensor = {"name": "input", "shape": [1, 64], "datatype": "FP64", "data": row.tolist()}
    return {"inputs": [tensor]}


def on(urls: list[str], path: str, body: Callable[[int], dict[str, Any]]) -> Request:
    def request(client: int, number: int) -> tuple[str, dict[str, Any]]:
        return f"{urls[client % len(urls)]}{path}", body(number)

    return request


def summary(outcomes: list[Outcome], seconds: float) -> dict[str, float]:
    answered = [o for o in outcomes if o.status == 200]
    latencies = [o.latency * 1000 for o in answered]
    return {
        "requests_per_s": round(len(answered) / seconds, 1),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "errors": len(outcomes) - len(answered),
    }


def measured(load: ClosedLoop, seconds: float) -> dict[str, float]:
    """Run ``load`` for a warm-up and then ``seconds``; the summary of the measured part."""
    with load:
        time.sleep(WARM_UP_S)
        start = time.monotonic()
        time.sleep(seconds)
        end = time.monotonic()
    window = [o for o in load.outcomes if start <= o.started and o.finished <= end]
    return summary(window, end - start)


def throughput(cluster: Cluster, rows: np.ndarray, clients: int, seconds: float) -> dict[str, Any]:
    urls = [cluster.url("gateway-a"), cluster.url("gateway-b")]

    def predict(number: int) -> dict[str, Any]:
        return {"input": rows[number % len(rows)].tolist()}

    one = measured(ClosedLoop(on(urls[:1], "/apps/digits/predict", predict), clients), seconds)
    two = measured(ClosedLoop(on(urls, "/apps/digits/predict", predict), clients), seconds)
    return {
        "clients": clients,
        "one_gateway": one,
        "two_gateways": two,
        "throughput_ratio": round(two["requests_per_s"] / max(one["requests_per_s"], 1e-9), 2),
        "cores": os.cpu_count(),
    }


def served_version(url: str, row: np.ndarray) -> str:
    answer = httpx.post(f"{url}/v2/models/digits/infer", json=infer_body(row), timeout=10)
    return str(answer.json()["model_version"])


def propagation(cluster: Cluster, row: np.ndarray, changes: int) -> dict[str, Any]:
    a, b = cluster.url("gateway-a"), cluster.url("gateway-b")
    times = []
    for number in range(changes):
        version = "1" if number % 2 == 0 else "2"
        started = time.monotonic()
        answer = httpx.put(
            f"{a}/admin/models/digits/version", json={"version": version}, headers=AUTH
        )
        answer.raise_for_status()
        while served_version(b, row) != version:
            if time.monotonic() - started > 30:
                raise RuntimeError(f"gateway-b still serves another version than {version}")
        times.append((time.monotonic() - started) * 1000)
    return {
        "changes": changes,
        "median_ms": round(float(np.median(times)), 1),
        "max_ms": round(max(times), 1),
    }


def failover(cluster: Cluster, rows: np.ndarray) -> dict[str, Any]:
    urls = [cluster.url("gateway-a"), cluster.url("gateway-b")]
    victim = cluster.bed.hosts["wrapper-1"]
    address = cluster.wrapper_address("wrapper-1")

    def infer(number: int) -> dict[str, Any]:
        return infer_body(rows[number % len(rows)])

    def predict(number: int) -> dict[str, Any]:
        return {"input": rows[number % len(rows)].tolist()}

    def out_of_rotation(url: str) -> Callable[[], bool]:
        return lambda: address not in replica_addresses(url)

    model = ClosedLoop(on(urls, "/v2/models/digits/infer", infer), 8)
    app = ClosedLoop(on(urls, "/apps/tight/predict", predict), 8)
    with model, app:
        time.sleep(WARM_UP_S)
        cut = time.monotonic()
        cluster.bed.cut(victim)
        detected = {}
        for name, url in zip(("gateway-a", "gateway-b"), urls, strict=True):
            wait_until(out_of_rotation(url), 30, 0.02)
            detected[name] = round(time.monotonic() - cut, 2)
        time.sleep(3)
        restored = time.monotonic()
        cluster.bed.restore(victim)
        wait_until(lambda: all(address in replica_addresses(url) for url in urls), 60, 0.02)
        rejoined = time.monotonic() - restored
        time.sleep(1)
    lost_v2 = [o for o in model.outcomes if o.status != 200]
    defaults = [o for o in app.outcomes if o.status != 200 or o.body.get("default")]
    after_cut = [o for o in defaults if o.finished >= cut]
    return {
        "left_rotation_after_s": detected,
        "v2_requests": len(model.outcomes),
        "v2_failed": len(lost_v2),
        "v2_failures": [
            {
                "s_after_cut": round(o.started - cut, 2),
                "latency_ms": round(o.latency * 1000, 1),
                "status": o.status,
                "body": o.body,
            }
            for o in lost_v2[:5]
        ],
        "v2_max_latency_ms": round(max(o.latency for o in model.outcomes) * 1000, 1),
        "app_requests": len(app.outcomes),
        "app_defaults_after_cut": len(after_cut),
        "app_defaults_until_s_after_cut": round(
            max((o.finished - cut for o in after_cut), default=0.0), 2
        ),
        "rejoined_after_s": round(rejoined, 2),
    }


def store_outage(
    cluster: Cluster, rows: np.ndarray, labels: np.ndarray, seconds: float
) -> dict[str, Any]:
    url = cluster.url("gateway-a")

    def predict(number: int) -> dict[str, Any]:
        return {"input": rows[number % len(rows)].tolist(), "user": "u"}

    predicting = ClosedLoop(on([url], "/apps/bandit/predict", predict), 8)
    feedback = {"input": rows[0].tolist(), "label": int(labels[0]), "user": "u"}
    refusals: list[tuple[int, float]] = []
    with predicting:
        time.sleep(WARM_UP_S)
        frozen = time.monotonic()
        os.kill(cluster.redis_process.pid, signal.SIGSTOP)
        try:
            with httpx.Client(timeout=30) as client:
                while time.monotonic() - frozen < seconds:
                    started = time.monotonic()
                    answer = client.post(f"{url}/apps/bandit/feedback", json=feedback)
                    refusals.append((answer.status_code, time.monotonic() - started))
                    time.sleep(0.2)
        finally:
            os.kill(cluster.redis_process.pid, signal.SIGCONT)
        thawed = time.monotonic()
        time.sleep(2)
    during = [o for o in predicting.outcomes if frozen <= o.started and o.finished <= thawed]
    return {
        "feedback_first_answer": {"status": refusals[0][0], "ms": round(refusals[0][1] * 1000, 1)},
        "feedback_later_answers_max_ms": round(max(r[1] for r in refusals[1:]) * 1000, 1),
        "feedback_statuses": sorted({r[0] for r in refusals}),
        "predictions_during": summary(during, thawed - frozen),
        "prediction_defaults_during": sum(
            1 for o in during if o.status == 200 and o.body["default"]
        ),
    }


def main() -> int:
    """Build the bed, run the four measurements, print and save them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--outage", type=float, default=5.0)
    parser.add_argument(
        "--only", choices=("throughput", "propagation", "failover", "outage"), action="append"
    )
    args = parser.parse_args()
    wanted = set(args.only or ("throughput", "propagation", "failover", "outage"))
    reason = cluster_unavailable_reason()
    if reason is not None:
        print(f"bench/cluster.py: the multi-host bed cannot be built here: {reason}")
        return 1
    rows, labels = digits()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch, NetBed() as bed:
        folder = Path(scratch)
        cluster = Cluster(bed, folder, train(folder, rows, labels))
        try:
            cluster.start_wrappers(PUBLISHED)
            cluster.publish(PUBLISHED)
            config = gateway_toml(cluster.state_url(), extra_apps=APPS)
            for name in ("gateway-a", "gateway-b"):
                cluster.start_gateway(name, config)
            if "throughput" in wanted:
                results["throughput"] = throughput(cluster, rows, args.clients, args.seconds)
            if "propagation" in wanted:
                results["admin_propagation"] = propagation(cluster, rows[0], args.changes)
            if "failover" in wanted:
                results["failover"] = failover(cluster, rows)
            if "outage" in wanted:
                results["store_outage"] = store_outage(cluster, rows, labels, args.outage)
        finally:
            cluster.close()
    print(json.dumps(results, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cluster.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
