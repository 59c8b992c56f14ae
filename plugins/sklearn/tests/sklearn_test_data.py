"""Data for the scikit-learn plugin's tests: generated sentences about three topics, and a
generated table of customers of several datatypes."""

from __future__ import annotations

from typing import Any

import numpy as np

TOPICS = {
    "sports": ["match", "goal", "team", "score", "coach", "league", "runner", "ball"],
    "weather": ["rain", "sunny", "storm", "cloud", "wind", "forecast", "snow", "cold"],
    "cooking": ["oven", "recipe", "salt", "bake", "pan", "flour", "taste", "soup"],
}
FILLER = ["the", "a", "today", "very", "and", "with", "after", "some"]


def make_sentences(count: int, seed: int) -> tuple[list[str], list[str]]:
    """Generated sentences, each mostly about one topic, and that topic."""
    rng = np.random.default_rng(seed)
    names = sorted(TOPICS)
    sentences, topics = [], []
    for _ in range(count):
        topic = names[int(rng.integers(len(names)))]
        words = list(rng.choice(TOPICS[topic], size=4)) + list(rng.choice(FILLER, size=3))
        rng.shuffle(words)
        sentences.append(" ".join(words))
        topics.append(topic)
    return sentences, topics


CITIES = ("lisbon", "oslo", "paris", "rome")


def make_customers(count: int, seed: int) -> tuple[Any, np.ndarray]:
    """A pandas DataFrame of customers (numbers, strings, booleans) and whether each renewed.

    Renewal depends on every column, so a model that drops or garbles one is visibly worse.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, size=count),
            "spend": rng.gamma(2.0, 30.0, size=count).round(2),
            "city": rng.choice(CITIES, size=count),
            "member": rng.random(count) < 0.4,
            "plan": rng.choice(["basic", "plus", "pro"], size=count),
        }
    )
    score = (
        0.03 * (frame["age"] - 45)
        + 0.02 * (frame["spend"] - 60)
        + frame["city"].map({"lisbon": -1.0, "oslo": 1.0, "paris": 0.5, "rome": -0.5})
        + 1.5 * frame["member"]
        + frame["plan"].map({"basic": -1.0, "plus": 0.0, "pro": 1.0})
    )
    renewed = (score + rng.normal(0.0, 0.5, size=count) > 0).to_numpy().astype(np.int64)
    return frame, renewed


def frame_columns(frame: Any) -> dict[str, np.ndarray]:
    """A DataFrame as Ketch's per-column inputs: numbers as they are, strings as UTF-8 BYTES."""
    inputs = {}
    for name in frame.columns:
        values = frame[name].to_numpy()
        if values.dtype.kind in "OUT" or str(frame[name].dtype) in ("str", "string"):
            encoded = np.empty(len(values), dtype=object)
            encoded[:] = [str(value).encode() for value in values]
            values = encoded
        inputs[str(name)] = values
    return inputs
