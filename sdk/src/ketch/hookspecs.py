"""The wrapper contract: the hooks a Ketch framework plugin implements.

A framework plugin is a module (or any object) registered under the
``ketch`` entry-point group whose functions are named after these hooks and
marked with :data:`ketch.hookimpl`. One wrapper process registers exactly one
framework plugin, chosen by name, plus any cross-cutting plugins whose
implementations are all wrappers (``@hookimpl(wrapper=True)``), for metrics or
tracing.

The runtime calls :func:`ketch_load`, then :func:`ketch_place` with the spec's
device, then :func:`ketch_signature`, once at start-up; then
:func:`ketch_batch_predict` for every request, and :func:`ketch_observe` for
every batch of feedback when the model learns online; and :func:`ketch_unload`
once when the wrapper stops. :func:`ketch_example_inputs` is called only by what
probes a model (the conformance suite) when it needs rows to send.

Rules every hook follows:

- Hooks are called with keyword arguments; an implementation may accept fewer
  parameters than the spec lists, never others.
- Every hook but ``ketch_unload`` is ``firstresult``: the call stops at the first
  implementation that returns something other than None.
- Bad input raises :class:`ketch.InvalidInputError` with a message that says what
  was expected and what came; the wrapper answers INVALID_ARGUMENT and keeps serving.
- A plugin module imports its framework lazily (inside the hooks), because
  discovery imports every installed plugin module to learn what it is.
- ``ketch_batch_predict`` may be called from several threads at once.

See ``docs/plugin_hooks.md`` for the same contract with examples.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pluggy

from ketch.model_spec import ModelSpec
from ketch.signature import Signature

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

PROJECT_NAME = "ketch"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec(firstresult=True)
def ketch_load(spec: ModelSpec) -> object | None:
    """Load the model that ``spec`` names and return the plugin's own handle for it.

    :param spec: where the model is (``spec.path``: a file, directory or URI), its
        name and version, the device it will be placed on, and plugin options
        (strings, such as ``method=predict_proba``).
    :returns: any object the plugin's other hooks understand, or None when this
        plugin does not recognise the file (another plugin might).
    :raises ketch.ModelLoadError: the file is this plugin's kind but cannot be
        loaded (corrupt, unsafe to load without the user's consent, an option
        that makes no sense); the message names the file and the cause.

    Stops at the first non-None result.
    """


@hookspec(firstresult=True)
def ketch_place(model: object, device: str) -> object | None:
    """Move a loaded model to ``device`` and return the handle to use from now on.

    :param model: a handle that ``ketch_load`` returned.
    :param device: ``cpu``, ``cuda``, ``cuda:N``, ``mps``, or another name the
        framework knows.
    :returns: the placed model's handle (it may be ``model`` itself). After this,
        every ``ketch_batch_predict`` on it runs on ``device`` and returns its
        outputs in host memory.
    :raises ketch.DeviceUnavailableError: the device is unknown, absent from this
        machine, or unsupported by the framework; the message names the device
        asked for and the devices that exist.

    Stops at the first non-None result.
    """


@hookspec(firstresult=True)
def ketch_signature(model: object) -> Signature | None:
    """Describe the model's inputs, outputs and capabilities.

    :param model: a handle that ``ketch_place`` returned.
    :returns: a :class:`ketch.Signature`: inputs and outputs as
        :class:`ketch.TensorSpec` (name, Open Inference Protocol datatype, shape
        with ``-1`` for the batch dimension and any variable one), and
        :class:`ketch.Capabilities` (devices, observe, maximum batch, the
        tolerance for comparing outputs).

    The signature must hold for every call: the conformance suite checks real
    outputs against it.

    Stops at the first non-None result.
    """


@hookspec(firstresult=True)
def ketch_batch_predict(
    model: object, inputs: Mapping[str, np.ndarray]
) -> Mapping[str, np.ndarray] | None:
    """Predict a batch of rows.

    :param model: a handle that ``ketch_place`` returned.
    :param inputs: one numpy array per declared input, rows on axis 0, every
        array with the same number of rows (possibly zero). BYTES inputs are
        numpy object arrays of ``bytes``.
    :returns: one numpy array per declared output, of the declared datatype, with
        exactly one row per input row, in the same order. Row ``i``'s output never
        depends on the other rows of the batch. BYTES outputs are object arrays of
        ``bytes`` (``str`` is accepted and sent as UTF-8).
    :raises ketch.InvalidInputError: input the model cannot use (wrong names,
        datatype or shape); the message says what was expected and what came.
    :raises ketch.CallCancelled: the plugin stopped because the call it serves ended
        (see :func:`ketch.current_call`, for a framework that can stop half-way).

    Never called for a call that is already over (past its deadline, or cancelled).
    May be called from several threads at once. Stops at the first non-None result.
    """


@hookspec(firstresult=True)
def ketch_observe(
    model: object, inputs: Mapping[str, np.ndarray], labels: np.ndarray
) -> bool | None:
    """Learn online from labelled rows (optional: only plugins that can, implement it).

    :param model: a handle that ``ketch_place`` returned, whose signature declares
        ``Capabilities(observe=True)``.
    :param inputs: as for ``ketch_batch_predict``.
    :param labels: one label per input row, on axis 0.
    :returns: True when the model changed, False when it did not.
    :raises ketch.InvalidInputError: inputs or labels the model cannot learn from.

    Predictions after an update reflect it. May be called from several threads at
    once, alongside ``ketch_batch_predict``. Stops at the first non-None result.
    """


@hookspec(firstresult=True)
def ketch_example_inputs(model: object, rows: int) -> Mapping[str, np.ndarray] | None:
    """Rows this model can predict, for probes and the conformance suite (optional).

    :param model: a handle that ``ketch_place`` returned.
    :param rows: how many rows to return (at least 1).
    :returns: one numpy array per declared input with ``rows`` rows, each a valid
        input for ``ketch_batch_predict`` (text in the model's own format, sizes inside
        the ranges a variable dimension accepts), or None to let the caller make
        random rows from the signature.

    Implement it when random rows that fit the signature are not valid input: a
    text format the model parses, or a dimension with a bounded range. The rows
    should differ from one another, so that a mix-up of rows is visible.

    Stops at the first non-None result.
    """


@hookspec
def ketch_unload(model: object) -> None:
    """Release the model when the wrapper stops (optional).

    :param model: a handle that ``ketch_place`` returned.

    Called once, after the server has stopped accepting calls and the calls in
    flight have finished (on SIGTERM, say), and before the process exits. Save
    state that must survive a restart (an online-learning model's weights) and
    free what the process will not free by exiting. Exceptions are logged; the
    process still exits.

    Every implementation is called (not ``firstresult``).
    """
