"""bench/wrapper_overhead.py scenarios for the TensorFlow plugin."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench_common import Scenario, repeat_rows


def save_digits_mlp(
    rows: np.ndarray, labels: np.ndarray, path: Path, *, epochs: int, batch_size: int
) -> None:
    """Train a Keras 3 MLP (64-32-10, softmax output ``probabilities``) and save it at ``path``."""
    import keras

    keras.utils.set_random_seed(0)
    pixels = keras.Input(shape=(64,), name="pixels")
    hidden = keras.layers.Dense(32, activation="relu")(pixels)
    probabilities = keras.layers.Dense(10, activation="softmax", name="probabilities")(hidden)
    model = keras.Model(pixels, probabilities)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(rows.astype(np.float32), labels, epochs=epochs, batch_size=batch_size, verbose=0)
    model.save(path)


def keras_digits_mlp(folder: Path) -> Scenario:
    """A Keras 3 MLP (64-32-10) on digits, saved as ``.keras``, served by the tensorflow plugin."""
    from sklearn.datasets import load_digits

    rows, labels = load_digits(return_X_y=True)
    rows = (rows / 16.0).astype(np.float32)
    path = folder / "digits_mlp.keras"
    save_digits_mlp(rows, labels, path, epochs=8, batch_size=64)
    return Scenario("Keras MLP (tensorflow)", "tensorflow", path, {"pixels": repeat_rows(rows)}, {})


SCENARIOS: dict[str, Callable[[Path], Scenario]] = {"tensorflow-keras-mlp": keras_digits_mlp}
