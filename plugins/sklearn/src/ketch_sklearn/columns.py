"""The columns of an estimator fitted on a pandas DataFrame: names, datatypes, sample values.

scikit-learn records a DataFrame's column names in ``feature_names_in_`` but not
their dtypes, so each column's datatype is read from what the fitted estimator
learnt about it: the categories of the encoder that takes it (strings, booleans
or numbers), a text vectorizer (strings), or else a number. The option
``columns=NAME:DATATYPE,...`` says it outright where the guess is wrong.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from ketch import ModelLoadError

__all__ = [
    "COLUMN_DATATYPES",
    "NUMERIC_DATATYPES",
    "Column",
    "feature_names",
    "read_columns",
]

NUMERIC_DATATYPES: Final = (
    "FP16",
    "FP32",
    "FP64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
)
COLUMN_DATATYPES: Final = (*NUMERIC_DATATYPES, "BOOL", "BYTES")
CATEGORY_ENCODERS: Final = ("OneHotEncoder", "OrdinalEncoder", "TargetEncoder")
TEXT_VECTORIZERS: Final = ("CountVectorizer", "TfidfVectorizer", "HashingVectorizer")
IMPUTERS: Final = ("SimpleImputer",)
SAMPLE_WORDS: Final = 100
"""How many of a text column's vocabulary words to keep as sample values."""


@dataclass(frozen=True, slots=True)
class Column:
    """One column the estimator takes: its name, datatype, and values it knows (if any).

    ``known_values`` are the categories an encoder learnt, or words of a text
    column's vocabulary: values every row may hold, for probes and sample rows.
    """

    name: str
    datatype: str
    known_values: tuple[Any, ...] = ()

    @property
    def numeric(self) -> bool:
        """Whether the column holds numbers."""
        return self.datatype in NUMERIC_DATATYPES


def feature_names(estimator: Any) -> tuple[str, ...] | None:
    """The DataFrame columns the estimator was fitted on, or None when it records none."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        return None
    return tuple(str(name) for name in names)


def _datatype_of_values(values: np.ndarray) -> str:
    kind = np.asarray(values).dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return "INT64"
    if kind == "f":
        return "FP64"
    return "BYTES"


def _column_names(selection: Any, names: Sequence[str]) -> list[str]:
    """The column names a ColumnTransformer's fitted column selection stands for."""
    if isinstance(selection, str):
        return [selection]
    if isinstance(selection, slice):
        return list(names[selection])
    picked = list(np.asarray(selection).ravel()) if selection is not None else []
    if picked and isinstance(picked[0], np.bool_ | bool):
        return [name for name, keep in zip(names, picked, strict=True) if keep]
    return [
        names[int(item)] if isinstance(item, np.integer | int) else str(item) for item in picked
    ]


def _steps(transformer: Any) -> Iterator[Any]:
    """The transformer itself, or the steps of a pipeline, in order."""
    steps = getattr(transformer, "steps", None)
    if steps is None:
        yield transformer
        return
    for _, step in steps:
        yield from _steps(step)


def _learnt_columns(transformer: Any, columns: list[str]) -> dict[str, Column]:
    """What a fitted transformer (or the first steps of a pipeline) says about its columns.

    Imputers keep the columns as they are, so the steps after them are read too.
    """
    learnt: dict[str, Column] = {}
    for step in _steps(transformer):
        kind = type(step).__name__
        if kind in TEXT_VECTORIZERS:
            words = tuple(sorted(getattr(step, "vocabulary_", None) or ()))[:SAMPLE_WORDS]
            return {name: Column(name, "BYTES", words) for name in columns}
        categories = getattr(step, "categories_", None)
        if kind in CATEGORY_ENCODERS and categories is not None:
            return {
                name: Column(name, _datatype_of_values(values), tuple(values.tolist()))
                for name, values in zip(columns, categories, strict=False)
            }
        statistics = getattr(step, "statistics_", None)
        if kind not in IMPUTERS or statistics is None:
            break
        learnt = {
            name: Column(name, _datatype_of_values(np.asarray([value])))
            for name, value in zip(columns, statistics.tolist(), strict=False)
        }
    return learnt


def _inferred_columns(estimator: Any, names: Sequence[str]) -> dict[str, Column]:
    """Columns whose datatype a fitted encoder, vectorizer or ColumnTransformer reveals."""
    first = next(_steps(estimator))
    transformers = getattr(first, "transformers_", None)
    if transformers is None:
        # HistGradientBoosting with categorical features encodes them with its own fitted
        # ColumnTransformer (a private attribute, read only if it is there)
        transformers = getattr(getattr(first, "_preprocessor", None), "transformers_", None)
    if transformers is None:
        return _learnt_columns(estimator, list(names))
    learnt: dict[str, Column] = {}
    for _, transformer, selection in transformers:
        if isinstance(transformer, str):  # "drop" or "passthrough"
            continue
        learnt.update(_learnt_columns(transformer, _column_names(selection, names)))
    return learnt


def read_columns(
    estimator: Any, names: Sequence[str], declared: Mapping[str, str]
) -> tuple[Column, ...]:
    """Every column in the estimator's order: declared, else learnt, else a number (FP64)."""
    unknown = sorted(set(declared) - set(names))
    if unknown:
        raise ModelLoadError(
            f"option columns names {', '.join(map(repr, unknown))}, which the estimator was "
            f"not fitted on; its columns are {', '.join(map(repr, names))}"
        )
    learnt = _inferred_columns(estimator, names)
    columns = []
    for name in names:
        known = learnt.get(name, Column(name, "FP64"))
        if name in declared:
            kept = known.known_values if declared[name] == known.datatype else ()
            known = Column(name, declared[name], kept)
        columns.append(known)
    return tuple(columns)
