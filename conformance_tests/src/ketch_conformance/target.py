"""What the suite checks: a plugin, a model, a device, and rows to try."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ketch import ModelSpec

__all__ = ["ConformanceTarget"]


@dataclass(frozen=True)
class ConformanceTarget:
    """A wrapper to check.

    :param plugin: the plugin's entry-point name, or an import reference
        (``package.module`` or ``package.module:attribute``).
    :param model_path: the model the plugin loads.
    :param options: plugin options, as ``ketch serve --option`` takes them.
    :param device: where to place the model.
    :param sample_inputs: rows to predict (at least 4), by input name; when None,
        the suite makes random rows that fit the signature.
    :param plugin_object: the plugin object itself, for in-process checks of a
        plugin that is not installed (``plugin`` then only names it, and the
        gRPC checks import ``plugin`` as a reference).
    :param env: extra environment variables for the ``ketch serve`` process.
    """

    plugin: str
    model_path: str | Path
    options: Mapping[str, str] = field(default_factory=dict)
    device: str = "cpu"
    sample_inputs: Mapping[str, np.ndarray] | None = None
    plugin_object: object | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def spec(self, device: str | None = None) -> ModelSpec:
        """The model spec the runtime would build for this target."""
        return ModelSpec.from_path(
            self.model_path, device=device or self.device, options=dict(self.options)
        )
