"""What the suite checks: a plugin, a model, a device, and rows to try."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ketch import ModelSpec

__all__ = ["ConformanceTarget", "PredictionError"]

PredictionError = Callable[[Mapping[str, np.ndarray], np.ndarray], float]
"""How far a batch's outputs are from its labels (lower is closer): ``error(outputs, labels)``."""


@dataclass(frozen=True)
class ConformanceTarget:
    """A wrapper to check.

    :param plugin: the plugin's entry-point name, or an import reference
        (``package.module`` or ``package.module:attribute``).
    :param model_path: the model the plugin loads.
    :param options: plugin options, as ``ketch serve --option`` takes them.
    :param device: where to place the model.
    :param sample_inputs: rows to predict (at least 4), by input name; when None,
        the rows the plugin's ``ketch_example_inputs`` gives, else random rows that
        fit the signature. Unicode or bytes arrays (numpy ``U`` or ``S``) for a
        ``BYTES`` input become its UTF-8 bytes; numbers become the declared datatype.
    :param plugin_object: the plugin object itself, for in-process checks of a
        plugin that is not installed (``plugin`` then only names it, and the
        gRPC checks import ``plugin`` as a reference).
    :param env: extra environment variables for the ``ketch serve`` process.
    :param sample_labels: one label per sample row, for the checks of online
        learning (the observe tier): the suite teaches the model these labels and
        expects its predictions to move toward them.
    :param prediction_error: how far outputs are from labels (lower is closer);
        when None the suite compares the labels with the first output they fit
        (see :func:`ketch_conformance.labels.default_prediction_error`).
    :param shutdown_timeout: seconds a wrapper gets to exit after SIGTERM once the
        calls in flight have finished, before the suite calls it hung.
    :param call_timeout: seconds one plugin call (one ``ketch_batch_predict``, one
        ModelInfer, ...) may take before its check fails with "no answer" and the
        process that hangs is replaced; loading gets at least 120 s.
    """

    plugin: str
    model_path: str | Path
    options: Mapping[str, str] = field(default_factory=dict)
    device: str = "cpu"
    sample_inputs: Mapping[str, np.ndarray] | None = None
    plugin_object: object | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    sample_labels: np.ndarray | None = None
    prediction_error: PredictionError | None = None
    shutdown_timeout: float = 30.0
    call_timeout: float = 60.0

    def spec(self, device: str | None = None) -> ModelSpec:
        """The model spec the runtime would build for this target."""
        return ModelSpec.from_path(
            self.model_path, device=device or self.device, options=dict(self.options)
        )

    def copy_model(self, folder: Path) -> Path:
        """Copy the model into ``folder``; the copy's path.

        The model is a file or a directory; files beside it whose names start with
        its own and a dot (``model.vw.args`` beside ``model.vw``) come along, so that
        checks which let the model learn and save never touch the original.
        """
        source = Path(self.model_path)
        folder.mkdir(parents=True, exist_ok=True)
        copy = folder / source.name
        if source.is_dir():
            shutil.copytree(source, copy)
        else:
            shutil.copy2(source, copy)
        for sibling in source.parent.iterdir():
            if sibling.name.startswith(f"{source.name}.") and sibling.is_file():
                shutil.copy2(sibling, folder / sibling.name)
        return copy
