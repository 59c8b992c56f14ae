"""What a row is for an estimator, and how request tensors become what it takes.

Three layouts:

- ``numeric``: one input, a matrix of numbers (``[-1, n_features]``). An estimator
  fitted on a DataFrame gets it as a DataFrame with the column names it knows, so
  scikit-learn finds the names it expects (no "X does not have valid feature names"
  warning) and a ColumnTransformer can select columns by name.
- ``text``: one input, one UTF-8 text per row (``BYTES [-1]``), for pipelines that
  start with a text vectorizer.
- ``columns``: one input per DataFrame column, named after it, each with its own
  datatype (numbers, ``BOOL``, ``BYTES`` for strings, ``[-1]``), built into the
  DataFrame the estimator was fitted on: MLServer's pandas codec, with the columns
  declared in the signature.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from ketch import ModelLoadError, TensorSpec, numpy_dtype, text_rows
from ketch_sklearn.columns import TEXT_VECTORIZERS, Column, feature_names, read_columns
from ketch_sklearn.options import SklearnOptions

__all__ = ["InputLayout", "pandas_module", "read_layout"]

SAMPLE_WORDS: Final = ("alpha", "beta", "gamma", "delta", "echo", "fox", "golf", "hotel")
WORDS_PER_SAMPLE: Final = 6


def pandas_module(needed_for: str) -> Any:
    """The ``pandas`` module; ModelLoadError naming the extra when it is not installed."""
    try:
        return importlib.import_module("pandas")
    except ImportError:
        raise ModelLoadError(
            f"{needed_for}: its rows must reach it as a pandas DataFrame, and pandas is not "
            "installed; install the extra: pip install 'ketch-sklearn[pandas]'"
        ) from None


@dataclass(frozen=True)
class InputLayout:
    """The inputs an estimator is served with, and how they become its ``X``.

    ``columns`` are the DataFrame's columns (``columns`` layout, or a ``numeric`` one
    whose estimator knows its feature names); ``words`` are a text model's vocabulary,
    for sample rows.
    """

    kind: str
    specs: tuple[TensorSpec, ...]
    columns: tuple[Column, ...] = ()
    words: tuple[str, ...] = ()
    pandas: Any = field(default=None, repr=False, compare=False)

    def estimator_rows(self, inputs: Mapping[str, np.ndarray]) -> Any:
        """The ``X`` for the estimator: a matrix, a list of texts, or a DataFrame."""
        if self.kind == "text":
            spec = self.specs[0]
            return text_rows(inputs[spec.name], spec.name)
        if self.kind == "numeric":
            batch = inputs[self.specs[0].name]
            if not self.columns:
                return batch
            return self.pandas.DataFrame(batch, columns=[column.name for column in self.columns])
        return self.pandas.DataFrame(
            {column.name: _column_values(column, inputs[column.name]) for column in self.columns}
        )

    def probe(self) -> dict[str, np.ndarray]:
        """One row the estimator should take: known categories, zeros, ``probe`` texts."""
        return self.samples(1, np.random.default_rng(0), typical=True)

    def samples(
        self, rows: int, rng: np.random.Generator, typical: bool = False
    ) -> dict[str, np.ndarray]:
        """``rows`` rows: random numbers and booleans, known categories, vocabulary words.

        ``typical`` makes every number 0 and every string the first one known.
        """
        if self.kind == "text":
            return {self.specs[0].name: _bytes(self._sentences(rows, rng, typical))}
        return {
            spec.name: _sample_column(spec, column, rows, rng, typical)
            for spec, column in zip(self.specs, self._spec_columns(), strict=True)
        }

    def _spec_columns(self) -> Sequence[Column | None]:
        return self.columns if self.kind == "columns" else [None]

    def _sentences(self, rows: int, rng: np.random.Generator, typical: bool) -> list[str]:
        words = self.words or SAMPLE_WORDS
        if typical:
            return [" ".join(words[:WORDS_PER_SAMPLE])] * rows
        picked = rng.integers(0, len(words), size=(rows, WORDS_PER_SAMPLE))
        return [" ".join(words[index] for index in row) for row in picked]


def _column_values(column: Column, values: np.ndarray) -> Any:
    if column.datatype == "BYTES":
        return text_rows(values, column.name)
    return values


def _bytes(texts: Sequence[str]) -> np.ndarray:
    column = np.empty(len(texts), dtype=object)
    column[:] = [text.encode("utf-8") for text in texts]
    return column


def _sample_column(
    spec: TensorSpec, column: Column | None, rows: int, rng: np.random.Generator, typical: bool
) -> np.ndarray:
    shape = (rows, *spec.row_shape)
    if column is not None and column.known_values:
        known = column.known_values
        picks = np.zeros(rows, int) if typical else rng.integers(0, len(known), size=rows)
        values = [known[index] for index in picks]
        if spec.datatype == "BYTES":
            return _bytes([str(value) for value in values])
        return np.asarray(values, dtype=numpy_dtype(spec.datatype))
    if spec.datatype == "BYTES":
        return _bytes(["probe" if typical else f"value {row}" for row in range(rows)])
    if spec.datatype == "BOOL":
        return np.zeros(shape, bool) if typical else rng.random(shape) < 0.5
    dtype = numpy_dtype(spec.datatype)
    if typical:
        return np.zeros(shape, dtype)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, 10, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _first_step(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    while steps:
        estimator = steps[0][1]
        steps = getattr(estimator, "steps", None)
    return estimator


def _takes_text(estimator: Any) -> bool:
    return type(_first_step(estimator)).__name__ in TEXT_VECTORIZERS


def _vocabulary(estimator: Any) -> tuple[str, ...]:
    vocabulary = getattr(_first_step(estimator), "vocabulary_", None) or {}
    return tuple(sorted(str(word) for word in vocabulary))


def _feature_count(estimator: Any, options: SklearnOptions) -> int:
    if options.n_features is not None:
        return options.n_features
    count = getattr(estimator, "n_features_in_", None)
    if count is None:
        raise ModelLoadError(
            f"cannot tell how many features a row of {type(estimator).__name__} has "
            "(it records no n_features_in_); set the option n_features"
        )
    return int(count)


def _layout_kind(options: SklearnOptions, columns: tuple[Column, ...], estimator: Any) -> str:
    if options.input_kind != "auto":
        return options.input_kind
    if _takes_text(estimator):
        return "text"
    if columns and (options.declared_columns or not all(c.numeric for c in columns)):
        return "columns"
    return "numeric"


def read_layout(estimator: Any, options: SklearnOptions) -> InputLayout:
    """How ``estimator`` takes its rows, from the options and what it learnt when fitted."""
    names = feature_names(estimator)
    what = f"{type(estimator).__name__} was fitted on a pandas DataFrame"
    columns = read_columns(estimator, names, options.declared_columns) if names else ()
    if options.declared_columns and not names:
        raise ModelLoadError(
            f"option columns applies to estimators fitted on a pandas DataFrame; "
            f"{type(estimator).__name__} records no column names (feature_names_in_)"
        )
    kind = _layout_kind(options, columns, estimator)
    if kind == "text":
        spec = TensorSpec(options.input_name, "BYTES", (-1,))
        return InputLayout(kind, (spec,), words=_vocabulary(estimator))
    if kind == "columns":
        if not columns:
            raise ModelLoadError(
                f"input=columns serves one input per DataFrame column, but "
                f"{type(estimator).__name__} records no column names (feature_names_in_): "
                "it was not fitted on a DataFrame; use input=numeric"
            )
        specs = tuple(TensorSpec(column.name, column.datatype, (-1,)) for column in columns)
        return InputLayout(kind, specs, columns, pandas=pandas_module(what))
    if columns and not all(column.numeric for column in columns):
        texts = [c.name for c in columns if not c.numeric]
        raise ModelLoadError(
            f"input=numeric sends one matrix of numbers, but {what} whose columns "
            f"{', '.join(map(repr, texts))} are not numbers; use input=columns (the default)"
        )
    spec = TensorSpec(
        options.input_name, options.input_datatype, (-1, _feature_count(estimator, options))
    )
    if not columns:
        return InputLayout(kind, (spec,))
    return InputLayout(kind, (spec,), columns, pandas=pandas_module(what))
