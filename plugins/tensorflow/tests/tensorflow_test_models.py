"""Tiny TensorFlow models for the plugin's tests, trained or built in a second or two.

- a Keras MLP on scikit-learn's digits (``.keras``), with probabilities and a label;
- a SavedModel text classifier (a TextVectorization layer under a softmax) trained on
  generated sentences, with a string input, a string output and a second signature;
- a SavedModel "order" function with four named inputs and four outputs of other
  datatypes (float64, int32, bool, string), which also parses numbers from text.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ketch_conformance import ConformanceTarget

TOPICS = {
    "astronomy": ["planet", "orbit", "comet", "telescope", "galaxy", "star", "moon", "nebula"],
    "gardening": ["soil", "seed", "tulip", "compost", "prune", "hedge", "bloom", "weed"],
    "music": ["chord", "melody", "violin", "tempo", "drum", "choir", "verse", "guitar"],
}
FILLER = ["the", "a", "tonight", "quite", "and", "with", "before", "some"]


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


def as_bytes_rows(sentences: list[str]) -> np.ndarray:
    """Sentences as an OIP BYTES tensor: a numpy object array of UTF-8 bytes."""
    rows = np.empty(len(sentences), dtype=object)
    rows[:] = [sentence.encode() for sentence in sentences]
    return rows


def conformance_target(
    kind: str, digits_keras: Path, topics_savedmodel: Path, digit_rows: np.ndarray, device: str
) -> ConformanceTarget:
    """The conformance suite's target for ``keras-mlp`` or ``savedmodel-text``, on ``device``."""
    if kind == "keras-mlp":
        return ConformanceTarget(
            "tensorflow", digits_keras, device=device, sample_inputs={"pixels": digit_rows[:16]}
        )
    sentences, _ = make_sentences(12, seed=1)
    return ConformanceTarget(
        "tensorflow",
        topics_savedmodel,
        device=device,
        sample_inputs={"text": as_bytes_rows(sentences)},
    )


def train_digits_mlp(rows: np.ndarray, labels: np.ndarray, epochs: int = 8) -> Any:
    """A small MLP: ``pixels`` (float32, 64 per row) in; ``probabilities`` and ``label`` out."""
    keras.utils.set_random_seed(0)
    pixels = keras.Input(shape=(64,), name="pixels")
    hidden = keras.layers.Dense(32, activation="relu")(pixels)
    probabilities = keras.layers.Dense(10, activation="softmax", name="probabilities")(hidden)
    label = keras.ops.cast(keras.ops.argmax(probabilities, axis=1), "int64")
    model = keras.Model(pixels, {"probabilities": probabilities, "label": label})
    training = keras.Model(pixels, probabilities)
    training.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    training.fit(rows, labels, epochs=epochs, batch_size=64, verbose=0)
    return model


SEQUENTIAL_VARIANTS = ("keras-input", "input-shape", "build", "called", "fit")
"""The ways people make a ``keras.Sequential`` model know its input."""


def build_sequential(variant: str, rows: np.ndarray) -> Any:
    """A digits classifier as ``keras.Sequential``, its input given the way ``variant`` says.

    ``called`` builds it with one call on ``rows`` (so Keras records that batch size);
    ``fit`` trains it briefly on ``rows`` without ever declaring the input.
    """
    keras.utils.set_random_seed(3)
    layers = [
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(10, activation="softmax", name="probabilities"),
    ]
    if variant == "keras-input":
        return keras.Sequential([keras.Input(shape=(64,)), *layers])
    if variant == "input-shape":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*input_shape", category=UserWarning)
            first = keras.layers.Dense(16, activation="relu", input_shape=(64,))
        return keras.Sequential([first, layers[1]])
    model = keras.Sequential(layers)
    if variant == "build":
        model.build((None, 64))
    elif variant == "called":
        model(rows)
    elif variant == "fit":
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(rows, np.arange(len(rows)) % 10, epochs=1, batch_size=32, verbose=0)
    else:
        raise ValueError(f"unknown Sequential variant {variant!r}")
    return model


def build_image_and_hint() -> Any:
    """A functional model of two inputs of two datatypes and two unnamed-dict outputs:
    ``image`` (float32, 4x4) and ``hint`` (int64) in; ``score`` and ``classes`` out."""
    keras.utils.set_random_seed(1)
    image = keras.Input(shape=(4, 4), name="image")
    hint = keras.Input(shape=(), dtype="int64", name="hint")
    features = keras.layers.Concatenate()(
        [keras.layers.Flatten()(image), keras.ops.expand_dims(keras.ops.cast(hint, "float32"), 1)]
    )
    score = keras.layers.Dense(1, name="score")(features)
    classes = keras.layers.Dense(3, activation="softmax", name="classes")(features)
    return keras.Model([image, hint], [score, classes])


def image_and_hint_rows(count: int, seed: int) -> dict[str, np.ndarray]:
    """Rows for :func:`build_image_and_hint`."""
    rng = np.random.default_rng(seed)
    return {
        "image": rng.random((count, 4, 4)).astype(np.float32),
        "hint": np.arange(count, dtype=np.int64),
    }


class TopicClassifier(tf.Module):  # type: ignore[misc]
    """A trained text classifier behind two signatures: everything, or the topic only."""

    def __init__(self, model: Any, topics: list[str]) -> None:
        super().__init__()
        self.model = model
        self.topics = tf.constant(topics)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])  # type: ignore[untyped-decorator]
    def classify(self, text: Any) -> dict[str, Any]:
        probabilities = self.model(text, training=False)
        return {
            "probabilities": probabilities,
            "topic": tf.gather(self.topics, tf.argmax(probabilities, axis=1)),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])  # type: ignore[untyped-decorator]
    def topic_only(self, text: Any) -> dict[str, Any]:
        probabilities = self.model(text, training=False)
        return {"topic": tf.gather(self.topics, tf.argmax(probabilities, axis=1))}


def save_topic_classifier(folder: Path, sentences: list[str], topics: list[str]) -> Path:
    """Train the text classifier and save it as a SavedModel directory; its path."""
    keras.utils.set_random_seed(0)
    names = sorted(set(topics))
    targets = np.array([names.index(topic) for topic in topics])
    vectorizer = keras.layers.TextVectorization(output_mode="tf_idf")
    vectorizer.adapt(tf.constant(sentences))
    text = keras.Input(shape=(), dtype="string", name="text")
    probabilities = keras.layers.Dense(len(names), activation="softmax")(vectorizer(text))
    model = keras.Model(text, probabilities)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    model.fit(tf.constant(sentences), targets, epochs=5, batch_size=32, verbose=0)
    module = TopicClassifier(model, names)
    path = folder / "topics"
    tf.saved_model.save(
        module,
        str(path),
        signatures={"serving_default": module.classify, "topic_only": module.topic_only},
    )
    return path


class OrderFunction(tf.Module):  # type: ignore[misc]
    """Arithmetic over four named inputs of four datatypes; no variables."""

    @tf.function(  # type: ignore[untyped-decorator]
        input_signature=[
            tf.TensorSpec([None, 3], tf.float64, name="prices"),
            tf.TensorSpec([None], tf.int32, name="quantity"),
            tf.TensorSpec([None], tf.bool, name="member"),
            tf.TensorSpec([None], tf.string, name="coupon"),
        ]
    )
    def price(self, prices: Any, quantity: Any, member: Any, coupon: Any) -> dict[str, Any]:
        discount = tf.strings.to_number(coupon, out_type=tf.float64)
        total = tf.reduce_sum(prices, axis=1) * tf.cast(quantity, tf.float64) * (1.0 - discount)
        return {
            "total": total,
            "items": quantity * 3,
            "free_shipping": tf.logical_or(member, total > 100.0),
            "receipt": tf.strings.join([coupon, tf.strings.as_string(quantity)], separator="x"),
        }


def save_order_function(folder: Path) -> Path:
    """The order function as a SavedModel directory; its path."""
    module = OrderFunction()
    path = folder / "order"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.price})
    return path


def order_rows(count: int, seed: int) -> dict[str, np.ndarray]:
    """Rows for the order function: prices, quantities, membership and coupon texts."""
    rng = np.random.default_rng(seed)
    coupons = np.empty(count, dtype=object)
    coupons[:] = [f"{value:.2f}".encode() for value in rng.choice([0.0, 0.1, 0.25], size=count)]
    return {
        "prices": rng.uniform(1.0, 40.0, size=(count, 3)),
        "quantity": rng.integers(1, 5, size=count).astype(np.int32),
        "member": rng.random(count) < 0.5,
        "coupon": coupons,
    }


def save_module(folder: Path, name: str, module: tf.Module, function: Any) -> Path:
    """``module`` saved with ``function`` as its serving_default signature; its path."""
    path = folder / name
    tf.saved_model.save(module, str(path), signatures={"serving_default": function})
    return path
