"""A loaded LightGBM booster: what it serves (its signature) and how it predicts.

This module imports lightgbm; the plugin module imports it only when a model loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import lightgbm
import numpy as np

from ketch import Capabilities, Signature, TensorSpec, Tolerance, numpy_dtype, validate_inputs
from ketch_lightgbm.options import LightGBMOptions

__all__ = ["BINARY", "INPUT", "MULTICLASS", "PLATFORM", "LightGBMModel", "describe", "task_of"]

PLATFORM: Final = "lightgbm"
INPUT: Final = "input"
BINARY: Final = frozenset({"binary"})
MULTICLASS: Final = frozenset({"multiclass", "multiclassova"})
TOLERANCE: Final = Tolerance(rtol=1e-9, atol=1e-12)


def task_of(objective: str) -> str:
    """``binary``, ``multiclass`` or ``regression`` (every other objective: one number a row)."""
    name = objective.split(maxsplit=1)[0] if objective else ""
    if name in BINARY:
        return "binary"
    if name in MULTICLASS:
        return "multiclass"
    return "regression"


def describe(booster: lightgbm.Booster, options: LightGBMOptions) -> Signature:
    """The inputs and outputs a booster serves with ``options``."""
    task = task_of(str(booster.params.get("objective", "")))
    classes = booster.num_model_per_iteration()
    scores_shape = (-1, classes) if classes > 1 else (-1,)
    if task == "binary":
        outputs = [TensorSpec("probability", "FP64", (-1,)), TensorSpec("label", "INT64", (-1,))]
    elif task == "multiclass":
        outputs = [
            TensorSpec("probabilities", "FP64", (-1, classes)),
            TensorSpec("label", "INT64", (-1,)),
        ]
    else:
        outputs = [TensorSpec("prediction", "FP64", scores_shape)]
    if options.raw_score:
        outputs.append(TensorSpec("raw_score", "FP64", scores_shape))
    return Signature(
        inputs=(TensorSpec(INPUT, options.input_datatype, (-1, booster.num_feature())),),
        outputs=tuple(outputs),
        capabilities=Capabilities(devices=("cpu",), tolerance=TOLERANCE),
        platform=PLATFORM,
    )


class LightGBMModel:
    """A booster, the options it was loaded with, and the signature it serves.

    LightGBM's prediction only reads the booster, so calls may run concurrently.
    """

    def __init__(self, booster: lightgbm.Booster, options: LightGBMOptions) -> None:
        self.booster = booster
        self.options = options
        self.signature = describe(booster, options)
        self.task = task_of(str(booster.params.get("objective", "")))

    def _scores(self, rows: np.ndarray, *, raw: bool) -> np.ndarray:
        scores = self.booster.predict(
            rows,
            num_iteration=self.options.num_iteration,
            raw_score=raw,
            num_threads=self.options.num_threads,
        )
        return np.asarray(scores, dtype=np.float64)

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The declared outputs, one row per input row (InvalidInputError for bad input)."""
        rows = validate_inputs(self.signature, inputs)
        if rows == 0:
            return {
                spec.name: np.empty((0, *spec.row_shape), numpy_dtype(spec.datatype))
                for spec in self.signature.outputs
            }
        batch = inputs[INPUT]
        scores = self._scores(batch, raw=False)
        if self.task == "binary":
            outputs = {"probability": scores, "label": (scores > 0.5).astype(np.int64)}
        elif self.task == "multiclass":
            outputs = {"probabilities": scores, "label": scores.argmax(axis=1).astype(np.int64)}
        else:
            outputs = {"prediction": scores}
        if self.options.raw_score:
            outputs["raw_score"] = self._scores(batch, raw=True)
        return outputs
