"""How far predictions are from labels, for the checks of online learning.

A target may say how with ``ConformanceTarget.prediction_error``; otherwise
:func:`default_prediction_error` compares the labels with the first output they
fit, which covers regression and classification with class indices from 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["default_prediction_error"]


def _probabilities(array: np.ndarray) -> bool:
    return bool(
        np.all(array >= 0.0)
        and np.all(array <= 1.0)
        and np.allclose(array.sum(axis=1), 1.0, atol=1e-3)
    )


def _class_error(scores: np.ndarray, labels: np.ndarray) -> float:
    """1 - p(label) for probabilities; the softmax cross-entropy for other scores."""
    chosen = np.arange(len(labels)), labels.astype(np.int64)
    if _probabilities(scores):
        return float(np.mean(1.0 - scores[chosen]))
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-np.mean(log_probabilities[chosen]))


def default_prediction_error(outputs: Mapping[str, np.ndarray], labels: np.ndarray) -> float:
    """The error of the first floating-point output that ``labels`` fit (lower is closer).

    - an output of the labels' shape: the mean absolute difference (regression);
    - integer labels in ``[0, K)`` and an output of shape ``[N, K]``: one minus the
      probability of the label (rows that sum to one), else the cross-entropy of
      the softmax of the scores (classification).

    :raises ValueError: no output fits the labels; give the target a ``prediction_error``.
    """
    labels = np.asarray(labels)
    for array in outputs.values():
        values = np.asarray(array)
        if values.dtype.kind not in "fc" or len(values) != len(labels):
            continue
        values = values.astype(np.float64)
        if values.shape == labels.shape and labels.dtype.kind in "biuf":
            return float(np.mean(np.abs(values - labels.astype(np.float64))))
        classes = values.shape[1] if values.ndim == 2 else 0
        if (
            labels.ndim == 1
            and labels.dtype.kind in "iu"
            and classes
            and (len(labels) == 0 or (labels.min() >= 0 and labels.max() < classes))
        ):
            return _class_error(values, labels)
    raise ValueError(
        "no floating-point output fits the labels (labels of shape "
        f"{list(labels.shape)} and dtype {labels.dtype}); give the ConformanceTarget a "
        "prediction_error(outputs, labels) that says how far outputs are from labels"
    )
