"""Ketch's quick start: train, serve, query over gRPC, stop.

Trains a logistic regression on scikit-learn's bundled digits, saves it with
skops (the safe format), starts ``ketch serve sklearn`` as a separate process,
sends the held-out digits over the Open Inference Protocol, prints the accuracy
and a few predictions, and stops the server with SIGTERM.

Run it with ``scripts/demo`` (which installs Ketch first), or with
``python examples/quickstart/demo.py`` inside the development environment.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import skops.io
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from ketch import WrapperClient, start_wrapper


def train(folder: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """Fit the classifier, save it as ``digits.skops``, return the path and the test split."""
    rows, labels = load_digits(return_X_y=True)
    train_rows, test_rows, train_labels, test_labels = train_test_split(
        rows / 16.0, labels, test_size=0.3, random_state=0
    )
    model = LogisticRegression(max_iter=2000).fit(train_rows, train_labels)
    path = folder / "digits.skops"
    skops.io.dump(model, path)
    print(f"trained LogisticRegression on {len(train_rows)} digits, saved {path.name}")
    return path, test_rows, test_labels


def main() -> int:
    """Run the demo; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="rows per gRPC call")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ketch-demo-") as folder:
        path, test_rows, test_labels = train(Path(folder))
        started = time.perf_counter()
        wrapper = start_wrapper(
            "sklearn", path, options={"method": "predict,predict_proba"}, echo_stderr=False
        )
        print(
            f"ketch serve is ready on {wrapper.address} after {time.perf_counter() - started:.2f} s"
        )
        try:
            with WrapperClient(wrapper.address, model="digits") as client:
                metadata = client.model_metadata()
                print(
                    f"model {metadata.name!r} ({metadata.platform}): "
                    f"inputs {[(t.name, t.datatype, list(t.shape)) for t in metadata.inputs]}, "
                    f"outputs {[(t.name, t.datatype, list(t.shape)) for t in metadata.outputs]}"
                )
                labels, confidences = [], []
                started = time.perf_counter()
                for start in range(0, len(test_rows), args.batch):
                    answer = client.infer({"input": test_rows[start : start + args.batch]})
                    labels.append(answer["predict"])
                    confidences.append(answer["predict_proba"].max(axis=1))
                elapsed = time.perf_counter() - started
        finally:
            status = wrapper.stop()
    predicted = np.concatenate(labels)
    confidence = np.concatenate(confidences)
    accuracy = float((predicted == test_labels).mean())
    calls = -(-len(test_rows) // args.batch)
    print(
        f"sent {len(test_rows)} test digits in {calls} gRPC calls "
        f"({elapsed * 1000 / calls:.2f} ms per call of up to {args.batch} rows)"
    )
    print(f"accuracy: {accuracy:.3f}")
    for index in range(5):
        print(
            f"  digit {index}: predicted {predicted[index]} (true {test_labels[index]}), "
            f"confidence {confidence[index]:.3f}"
        )
    print(f"ketch serve stopped cleanly (exit status {status})")
    return 0 if status == 0 and accuracy > 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
