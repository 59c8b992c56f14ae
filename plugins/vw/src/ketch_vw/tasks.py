"""What a loaded VW model predicts, the outputs that carry it, and the labels it learns from.

VW says what a workspace predicts through its prediction and label types; the
plugin serves four kinds of model:

- regression (a scalar prediction): output ``prediction``; labels are numbers;
- binary (``--binary``): outputs ``label`` (-1 or 1) and ``score`` (the raw score);
  labels are -1 or 1 (0 counts as -1);
- multiclass (``--oaa K``): output ``label`` (VW's class, 1 to K), and with
  ``--probabilities`` also ``probabilities`` (one column per class); labels are
  classes 1 to K;
- contextual bandit (``--cb_explore_adf``): output ``probabilities``, one column per
  action in the order of the row's action lines; labels are rows of
  ``(action index from 0, cost, probability)``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from ketch import InvalidInputError, LabelSpec, ModelLoadError, TensorSpec

__all__ = [
    "CLASS_COUNT_OPTIONS",
    "Task",
    "TaskInfo",
    "bandit_labels",
    "detect_task",
    "empty_outputs",
    "label_spec",
    "output_specs",
    "scalar_label_texts",
]

CLASS_COUNT_OPTIONS: Final = ("oaa", "ect", "log_multi")
INTERACTION_OPTIONS: Final = ("quadratic", "cubic", "interactions")
# VW's numbering of its prediction and label types (pylibvw.vw.p* and l*)
_SCALAR, _SCALARS, _ACTION_PROBS, _MULTICLASS = 0, 1, 3, 4
_SIMPLE_LABEL, _MULTICLASS_LABEL, _BANDIT_LABEL = 1, 2, 4


class Task(enum.Enum):
    """The kinds of model the plugin serves."""

    REGRESSION = "regression"
    BINARY = "binary"
    MULTICLASS = "multiclass"
    CONTEXTUAL_BANDIT = "contextual bandit"


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A model's task, and what else it says about its rows and outputs.

    ``classes`` counts a multiclass model's classes, ``probabilities`` says whether
    it gives them, ``namespaces`` are those its feature interactions name
    (``-q sa``: ``s`` and ``a``).
    """

    task: Task
    classes: int | None = None
    probabilities: bool = False
    namespaces: tuple[str, ...] = ()


def supplied_options(workspace: Any) -> dict[str, Any]:
    """The options the workspace was given or read from its model file, by name."""
    supplied: dict[str, Any] = {}
    for groups in workspace.get_config(filtered_enabled_reductions_only=False).values():
        for _, options in groups:
            for option in options:
                if option.value_supplied:
                    supplied[option.name] = option.value
    return supplied


def _interaction_namespaces(options: Mapping[str, Any]) -> tuple[str, ...]:
    """The namespaces that ``-q``, ``--cubic`` and ``--interactions`` name (``:`` is any)."""
    named = {
        letter
        for key in INTERACTION_OPTIONS
        for term in options.get(key) or ()
        for letter in str(term)
        if letter != ":"
    }
    return tuple(sorted(named))


def detect_task(workspace: Any, source: str) -> TaskInfo:
    """The task of a loaded workspace; ModelLoadError for a kind the plugin does not serve."""
    prediction = int(workspace.get_prediction_type())
    label = int(workspace.get_label_type())
    multiline = bool(workspace._is_multiline())
    options = supplied_options(workspace)
    namespaces = _interaction_namespaces(options)
    if prediction == _SCALAR and label == _SIMPLE_LABEL and not multiline:
        task = Task.BINARY if options.get("binary") else Task.REGRESSION
        return TaskInfo(task, namespaces=namespaces)
    if prediction in (_MULTICLASS, _SCALARS) and label == _MULTICLASS_LABEL and not multiline:
        counts = [int(options[name]) for name in CLASS_COUNT_OPTIONS if options.get(name)]
        if not counts:
            raise ModelLoadError(
                f"{source}: a multiclass model, but none of --{', --'.join(CLASS_COUNT_OPTIONS)} "
                "says how many classes it has"
            )
        return TaskInfo(
            Task.MULTICLASS, counts[0], probabilities=prediction == _SCALARS, namespaces=namespaces
        )
    if prediction == _ACTION_PROBS and label == _BANDIT_LABEL and multiline:
        return TaskInfo(Task.CONTEXTUAL_BANDIT, probabilities=True, namespaces=namespaces)
    raise ModelLoadError(
        f"{source}: the vw plugin serves regression, binary (--binary), multiclass (--oaa) "
        "and contextual-bandit (--cb_explore_adf) models; this one has VW prediction type "
        f"{prediction} and label type {label}"
    )


def output_specs(info: TaskInfo, actions: int | None) -> tuple[TensorSpec, ...]:
    """The outputs a model of this task declares."""
    if info.task is Task.REGRESSION:
        return (TensorSpec("prediction", "FP32", (-1,)),)
    if info.task is Task.BINARY:
        return (TensorSpec("label", "INT64", (-1,)), TensorSpec("score", "FP32", (-1,)))
    if info.task is Task.MULTICLASS:
        assert info.classes is not None
        label = TensorSpec("label", "INT64", (-1,))
        if not info.probabilities:
            return (label,)
        return (label, TensorSpec("probabilities", "FP32", (-1, info.classes)))
    assert actions is not None
    return (TensorSpec("probabilities", "FP32", (-1, actions)),)


def label_spec(info: TaskInfo) -> LabelSpec:
    """The labels a model of this task learns from, in VW's own numbering."""
    if info.task is Task.REGRESSION:
        return LabelSpec("numbers")
    if info.task is Task.BINARY:
        return LabelSpec("classes", (-1, 1))
    if info.task is Task.MULTICLASS:
        assert info.classes is not None
        return LabelSpec("classes", tuple(range(1, info.classes + 1)))
    return LabelSpec("bandit")


def _numbers(labels: np.ndarray, shape: str) -> list[Any]:
    """The labels as Python numbers (plain loops beat numpy on the few rows of an update)."""
    if labels.dtype.kind not in "iuf":
        raise InvalidInputError(f"labels: expected numbers, {shape}, got datatype {labels.dtype}")
    values: list[Any] = labels.tolist()
    if labels.dtype.kind == "f":
        flat = values if labels.ndim == 1 else [value for row in values for value in row]
        if not all(math.isfinite(value) for value in flat):
            raise InvalidInputError("labels: NaN or infinity cannot be learnt from")
    return values


def _whole(values: list[Any], what: str) -> list[int]:
    if any(value != int(value) for value in values):
        raise InvalidInputError(f"labels: expected whole numbers ({what})")
    return [int(value) for value in values]


def scalar_label_texts(info: TaskInfo, labels: np.ndarray) -> list[str]:
    """VW label text for each row of a regression, binary or multiclass model."""
    if labels.ndim != 1:
        raise InvalidInputError(
            f"labels: expected one number per row (shape [-1]), got shape {list(labels.shape)}"
        )
    values = _numbers(labels, "one per row")
    if info.task is Task.REGRESSION:
        return [repr(float(value)) for value in values]
    if info.task is Task.BINARY:
        classes = _whole(values, "-1 or 1")
        for row, value in enumerate(classes):
            if value not in (-1, 0, 1):
                raise InvalidInputError(
                    f"labels: row {row} has the label {value}, which this model cannot take: "
                    "a binary model learns from -1 (or 0) and 1"
                )
        return ["1" if value == 1 else "-1" for value in classes]
    assert info.classes is not None
    classes = _whole(values, f"classes 1 to {info.classes}")
    for row, value in enumerate(classes):
        if not 1 <= value <= info.classes:
            raise InvalidInputError(
                f"labels: row {row} has the label {value}, which this model cannot take: it "
                f"learns classes 1 to {info.classes} (VW numbers classes from 1; map a class "
                "k counted from 0 to k + 1)"
            )
    return [str(value) for value in classes]


def bandit_labels(labels: np.ndarray, action_counts: list[int]) -> list[tuple[int, float, float]]:
    """``(action, cost, probability)`` per row of a contextual-bandit model, checked."""
    if labels.ndim != 2 or labels.shape[1] != 3:
        raise InvalidInputError(
            "labels: a contextual-bandit model learns from rows of (action index from 0, "
            f"cost, probability of the action), shape [-1, 3]; got shape {list(labels.shape)}"
        )
    rows = _numbers(labels, "shape [-1, 3]")
    actions = _whole([row[0] for row in rows], "action indices from 0")
    checked = []
    for row, (action, (_, cost, probability)) in enumerate(zip(actions, rows, strict=True)):
        if not 0 <= action < action_counts[row]:
            raise InvalidInputError(
                f"labels: row {row} chose action {action}, but the row has "
                f"{action_counts[row]} actions (indices 0 to {action_counts[row] - 1})"
            )
        if not 0 < probability <= 1:
            raise InvalidInputError(
                f"labels: row {row}: the probability of the chosen action must be in (0, 1], "
                f"got {probability}"
            )
        checked.append((action, float(cost), float(probability)))
    return checked


def empty_outputs(specs: tuple[TensorSpec, ...]) -> Mapping[str, np.ndarray]:
    """Zero rows of every output."""
    dtypes = {"FP32": np.float32, "INT64": np.int64}
    return {spec.name: np.empty((0, *spec.row_shape), dtypes[spec.datatype]) for spec in specs}
