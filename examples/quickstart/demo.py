"""Ketch's quick start: train a model, serve it through the gateway, query it, stop.

Trains a logistic regression on scikit-learn's bundled digits and saves it with
skops next to a copy of ``ketch.toml`` in a folder of its own (``--folder``, or a
temporary one); starts ``ketch gateway --config ketch.toml`` there, which
launches and supervises the scikit-learn wrapper; sends the held-out digits
through the Apps API (``/apps/digits/predict``) and through the Open Inference
Protocol (``/v2/models/digits/infer``); prints the accuracy and the latency
percentiles it saw; and stops the gateway, which stops its wrapper.

Run it with ``scripts/demo`` (which installs Ketch first).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import skops.io
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from ketch_gateway import start_gateway

HERE = Path(__file__).resolve().parent


def train(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Fit the classifier, save it as ``digits.skops`` in ``folder``; the test split."""
    rows, labels = load_digits(return_X_y=True)
    train_rows, test_rows, train_labels, test_labels = train_test_split(
        rows / 16.0, labels, test_size=0.3, random_state=0
    )
    model = LogisticRegression(max_iter=2000).fit(train_rows, train_labels)
    skops.io.dump(model, folder / "digits.skops")
    print(f"trained LogisticRegression on {len(train_rows)} digits, saved digits.skops")
    return test_rows, test_labels


class Http:
    """One keep-alive connection to the gateway."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.connection = http.client.HTTPConnection(parsed.hostname or "", parsed.port)

    def post(self, path: str, document: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """The JSON answer and the milliseconds it took."""
        started = time.perf_counter()
        self.connection.request(
            "POST", path, json.dumps(document), {"Content-Type": "application/json"}
        )
        response = self.connection.getresponse()
        body = json.loads(response.read())
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise RuntimeError(f"{path} answered {response.status}: {body}")
        return body, elapsed


def percentiles(latencies: list[float]) -> str:
    """p50, p90 and p99 in milliseconds."""
    p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
    return f"p50 {p50:.2f} ms, p90 {p90:.2f} ms, p99 {p99:.2f} ms"


def query(url: str, test_rows: np.ndarray, test_labels: np.ndarray) -> bool:
    """Send every test digit through both surfaces; whether both are accurate."""
    client = Http(url)
    answers, latencies = [], []
    for row in test_rows:
        body, elapsed = client.post("/apps/digits/predict", {"input": row.tolist()})
        answers.append(body["output"])
        latencies.append(elapsed)
    app_accuracy = float(np.mean(np.array(answers) == test_labels))
    print(
        f"/apps/digits/predict, one digit per request: accuracy {app_accuracy:.3f}, "
        f"{percentiles(latencies)}"
    )
    example, _ = client.post("/apps/digits/predict", {"input": test_rows[0].tolist()})
    print(f"  e.g. {json.dumps(example)}")

    labels, latencies = [], []
    for start in range(0, len(test_rows), 32):
        batch = test_rows[start : start + 32]
        request = {
            "inputs": [
                {
                    "name": "input",
                    "shape": list(batch.shape),
                    "datatype": "FP64",
                    "data": batch.ravel().tolist(),
                }
            ]
        }
        body, elapsed = client.post("/v2/models/digits/infer", request)
        labels.extend(body["outputs"][0]["data"])
        latencies.append(elapsed)
    oip_accuracy = float(np.mean(np.array(labels) == test_labels))
    print(
        f"/v2/models/digits/infer, 32 digits per request: accuracy {oip_accuracy:.3f}, "
        f"{percentiles(latencies)}"
    )
    return min(app_accuracy, oip_accuracy) > 0.9


def main() -> int:
    """Run the demo; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--folder",
        type=Path,
        help="where to write the model, the configuration and the gateway's state "
        "(default: a temporary folder, removed at the end)",
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        folder: Path = args.folder or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="ketch-demo-"))
        )
        folder.mkdir(parents=True, exist_ok=True)
        config = Path(shutil.copy(HERE / "ketch.toml", folder / "ketch.toml"))
        test_rows, test_labels = train(folder)
        started = time.perf_counter()
        gateway = start_gateway(config, extra_args=["--log-level", "warning"], echo_stderr=False)
        elapsed = time.perf_counter() - started
        print(f"ketch gateway is ready on {gateway.url} after {elapsed:.2f} s")
        try:
            accurate = query(gateway.url, test_rows, test_labels)
        finally:
            status = gateway.stop()
    print(f"ketch gateway stopped cleanly, with its wrapper (exit status {status})")
    return 0 if status == 0 and accurate else 1


if __name__ == "__main__":
    sys.exit(main())
