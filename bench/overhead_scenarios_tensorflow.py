"""bench/wrapper_overhead.py scenarios for the TensorFlow plugin."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench_common import Scenario, repeat_rows


def save_digits_mlp(
    rows: np.ndarray,
    labels: np.ndarray,
    path: Path,
    *,
    epochs: int,
    batch_size: int,
    hidden: tuple[int, ...] = (32,),
) -> None:
    """Train a Keras 3 MLP (64, then ``hidden``, then 10 ``probabilities``); save it at ``path``."""
    import keras

    keras.utils.set_random_seed(0)
    pixels = keras.Input(shape=(64,), name="pixels")
    layer = pixels
    for width in hidden:
        layer = keras.layers.Dense(width, activation="relu")(layer)
    probabilities = keras.layers.Dense(10, activation="softmax", name="probabilities")(layer)
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


def keras_digits_mlp_512(folder: Path) -> Scenario:
    """The torch scenarios' shape in Keras (64-512-512-10): enough work per row to batch."""
    from sklearn.datasets import load_digits

    rows, labels = load_digits(return_X_y=True)
    rows = (rows / 16.0).astype(np.float32)
    path = folder / "digits_mlp_512.keras"
    save_digits_mlp(rows, labels, path, epochs=4, batch_size=64, hidden=(512, 512))
    return Scenario(
        "Keras MLP 64-512-512-10 (tensorflow)",
        "tensorflow",
        path,
        {"pixels": repeat_rows(rows)},
        {},
    )


SCENARIOS: dict[str, Callable[[Path], Scenario]] = {
    "tensorflow-keras-mlp": keras_digits_mlp,
    "tensorflow-keras-mlp-512": keras_digits_mlp_512,
}
