"""Sample rows a VW model can predict, for probes and the conformance suite.

Random rows made from the signature are no use to a text model (random bytes are
not VW examples), so the plugin writes its own: dense rows of the declared width,
or VW text examples for the model's task, with features in the namespaces its
interactions name (``-q sa`` gets features in ``s`` and ``a``), so that the
interactions take part. Every row differs from the others.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from ketch import numpy_dtype
from ketch_vw.examples import DEFAULT_NAMESPACE, SHARED
from ketch_vw.options import VwOptions
from ketch_vw.tasks import Task, TaskInfo

__all__ = ["sample_rows"]

FEATURES_PER_ROW: Final = 4


def _bytes_column(texts: list[str]) -> np.ndarray:
    column = np.empty(len(texts), dtype=object)
    column[:] = [text.encode("utf-8") for text in texts]
    return column


def _features(rng: np.random.Generator, row: int, word: str) -> str:
    """A few numeric features and one categorical feature that names the row."""
    values = rng.uniform(0.1, 1.0, size=FEATURES_PER_ROW)
    numeric = " ".join(f"x{index}:{value:.4f}" for index, value in enumerate(values))
    return f"{numeric} {word}=r{row}"


def _line(rng: np.random.Generator, row: int, namespaces: tuple[str, ...], word: str) -> str:
    return " ".join(f"|{namespace} {_features(rng, row, word)}" for namespace in namespaces)


def _dense(options: VwOptions, rows: int, rng: np.random.Generator) -> np.ndarray:
    assert options.n_features is not None
    shape = (rows, options.n_features)
    dtype = numpy_dtype(options.input_datatype)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, 10, size=shape).astype(dtype)
    return rng.uniform(0.0, 1.0, size=shape).astype(dtype)


def _bandit_row(
    rng: np.random.Generator, row: int, namespaces: tuple[str, ...], actions: int
) -> str:
    shared = f"{SHARED} {_line(rng, row, namespaces, 'user')}"
    choices = [_line(rng, action, namespaces, "item") for action in range(actions)]
    return "\n".join([shared, *choices])


def sample_rows(
    info: TaskInfo, options: VwOptions, rows: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """``rows`` rows for a model of ``info``'s task served with ``options``."""
    rng = np.random.default_rng(seed)
    if options.input_kind == "dense":
        return {options.input_name: _dense(options, rows, rng)}
    namespaces = info.namespaces or (DEFAULT_NAMESPACE,)
    if info.task is Task.CONTEXTUAL_BANDIT:
        assert options.actions is not None
        texts = [_bandit_row(rng, row, namespaces, options.actions) for row in range(rows)]
    else:
        texts = [_line(rng, row, namespaces, "id") for row in range(rows)]
    return {options.input_name: _bytes_column(texts)}
