"""What a model's outputs say, as numbers a correction policy can combine.

For classification, each row becomes a vector of class probabilities: a float
output of shape ``[-1, classes]`` (probabilities as they are, or scores through
a softmax when they are not), else an integer label output (one-hot, in the app's
numbering: a model that declares its classes, such as Vowpal Wabbit's 1 to K, is
read through :class:`~ketch_gateway.correction.label_mapping.LabelMapping`). For
regression, each row becomes one number, from a float output of shape ``[-1]``
or ``[-1, 1]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from ketch import LabelSpec, Signature, TensorSpec
from ketch_gateway.correction.label_mapping import LabelMapping
from ketch_gateway.errors import ApiError

__all__ = ["AnswerReader", "Task"]

Task = Literal["classification", "regression"]
FLOATS: Final = ("FP16", "FP32", "FP64")
INTEGERS: Final = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    result: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return result


@dataclass(frozen=True)
class AnswerReader:
    """Reads one kind of answer (``task``) out of any model's outputs."""

    task: Task
    classes: int = 0
    output: str | None = None

    def choose_output(self, model: str, signature: Signature) -> TensorSpec:
        """The output to read, or an error naming what the model offers."""
        specs = signature.output_specs
        if self.output is not None:
            if self.output not in specs:
                raise ApiError(
                    f"model {model!r} has no output {self.output!r} (it has {', '.join(specs)})"
                )
            return specs[self.output]
        if self.task == "classification":
            for spec in specs.values():
                if spec.datatype in FLOATS and spec.shape == (-1, self.classes):
                    return spec
            for spec in specs.values():
                if spec.datatype in INTEGERS and spec.row_shape in ((), (1,)):
                    return spec
        else:
            for spec in specs.values():
                if spec.datatype in FLOATS and spec.row_shape in ((), (1,)):
                    return spec
        offered = ", ".join(f"{s.name} {s.datatype} {list(s.shape)}" for s in specs.values())
        over = f" over {self.classes} classes" if self.task == "classification" else ""
        raise ApiError(
            f"model {model!r} has no output that reads as a {self.task} answer{over} "
            f"(it has {offered})"
        )

    def read(
        self,
        spec: TensorSpec,
        outputs: Mapping[str, np.ndarray],
        labels: LabelSpec | None = None,
    ) -> np.ndarray:
        """Class probabilities (rows x classes) or values (rows).

        ``labels``, the classes the model declares, maps a class it answers with to
        the app's class index.
        """
        array = np.asarray(outputs[spec.name])
        if self.task == "regression":
            return array.reshape(len(array)).astype(np.float64)
        if spec.datatype in INTEGERS:
            indices = LabelMapping(self.task, self.classes, labels).class_indices(array)
            vectors = np.zeros((len(indices), self.classes))
            valid = (indices >= 0) & (indices < self.classes)
            vectors[np.flatnonzero(valid), indices[valid]] = 1.0
            return vectors
        scores = array.astype(np.float64)
        is_probability = (scores >= 0).all() and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3)
        return scores if is_probability else _softmax(scores)

    def neutral(self) -> np.ndarray:
        """What a model that never answered is assumed to say: uniform, or zero."""
        if self.task == "regression":
            return np.zeros(())
        return np.full(self.classes, 1.0 / self.classes)

    def check_label(self, label: object) -> float | int:
        """The label as a class index or a number; ValueError saying what is expected."""
        if self.task == "classification":
            if (
                isinstance(label, bool)
                or not isinstance(label, int)
                or not 0 <= label < self.classes
            ):
                raise ValueError(f"label: expected a class index from 0 to {self.classes - 1}")
            return label
        if isinstance(label, bool) or not isinstance(label, int | float):
            raise ValueError("label: expected a number")
        return float(label)
