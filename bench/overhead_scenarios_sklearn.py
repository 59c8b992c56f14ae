"""bench/wrapper_overhead.py scenarios for the scikit-learn plugin."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench_common import Scenario, repeat_rows


def sklearn_logistic_regression(folder: Path) -> Scenario:
    """LogisticRegression on digits, saved with skops, served by the sklearn plugin."""
    import skops.io
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    rows, labels = load_digits(return_X_y=True)
    rows = rows / 16.0
    model = LogisticRegression(max_iter=2000).fit(rows, labels)
    path = folder / "digits.skops"
    skops.io.dump(model, path)
    return Scenario("sklearn LogisticRegression", "sklearn", path, {"input": repeat_rows(rows)}, {})


SCENARIOS: dict[str, Callable[[Path], Scenario]] = {"sklearn-logreg": sklearn_logistic_regression}
