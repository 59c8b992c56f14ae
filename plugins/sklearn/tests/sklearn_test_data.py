"""Data for the scikit-learn plugin's tests: generated sentences about three topics."""

from __future__ import annotations

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
