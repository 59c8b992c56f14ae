"""Calls whose meaning is in the arrays' memory: what a plugin does to its inputs and outputs.

Two rules are about arrays shared between the caller and the plugin (inputs
left as they were, outputs not reused by the next call), so they are probed in
the process that runs the hooks, on the arrays the plugin really saw and gave.
Each probe is a function of the hooks and a model handle; exceptions the plugin
raises pass through.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import numpy as np

if TYPE_CHECKING:
    from ketch_conformance.subjects import Hooks

__all__ = ["PROBES", "Outputs", "inputs_after_call", "outputs_across_calls", "read_only"]

Outputs = dict[str, np.ndarray]


def read_only(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Views of the arrays that cannot be written to, as arrays decoded from the wire are."""
    views = {}
    for name, array in inputs.items():
        view = np.asarray(array).view()
        view.flags.writeable = False
        views[name] = view
    return views


def _as_arrays(outputs: Mapping[str, Any]) -> Outputs:
    return {name: np.asarray(array) for name, array in outputs.items()}


def inputs_after_call(hooks: Hooks, model: object, inputs: Mapping[str, np.ndarray]) -> Outputs:
    """``ketch_batch_predict`` on writable copies of ``inputs``; the copies after the call."""
    given = {name: np.array(array, copy=True) for name, array in inputs.items()}
    hooks.batch_predict(model, given)
    return given


def outputs_across_calls(
    hooks: Hooks,
    model: object,
    first: Mapping[str, np.ndarray],
    second: Mapping[str, np.ndarray],
) -> tuple[Outputs, Outputs]:
    """The first batch's outputs as returned, and the same arrays after the second call."""
    returned = _as_arrays(hooks.batch_predict(model, read_only(first)))
    snapshot = {name: np.array(array, copy=True) for name, array in returned.items()}
    hooks.batch_predict(model, read_only(second))
    return snapshot, returned


PROBES: Final[dict[str, Callable[..., Any]]] = {
    "inputs_after_call": inputs_after_call,
    "outputs_across_calls": outputs_across_calls,
}
"""The probes by name, as a worker process runs them."""
