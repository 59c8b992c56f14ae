"""bench/wrapper_overhead.py scenarios for the LightGBM example plugin (examples/)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench_common import Scenario, repeat_rows


def lightgbm_digits(folder: Path) -> Scenario:
    """A 10-class booster (50 rounds, 15 leaves) on digits, 64 FP64 columns a row."""
    import lightgbm
    from sklearn.datasets import load_digits

    rows, digits = load_digits(return_X_y=True)
    rows = rows / 16.0
    parameters = {
        "objective": "multiclass",
        "num_class": 10,
        "num_leaves": 15,
        "verbosity": -1,
        "num_threads": 1,
        "seed": 1,
    }
    booster = lightgbm.train(parameters, lightgbm.Dataset(rows, digits), num_boost_round=50)
    path = folder / "digits.txt"
    booster.save_model(str(path))
    return Scenario(
        "lightgbm multiclass on digits", "lightgbm", path, {"input": repeat_rows(rows)}, {}
    )


SCENARIOS: dict[str, Callable[[Path], Scenario]] = {"lightgbm-digits": lightgbm_digits}
