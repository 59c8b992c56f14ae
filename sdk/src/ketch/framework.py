"""A typed façade over the hooks of one selected framework plugin."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ketch.errors import ContractViolation, KetchError, ModelLoadError, PluginError
from ketch.model_spec import ModelSpec
from ketch.plugin_manager import KetchPluginManager
from ketch.signature import Signature

__all__ = ["REQUIRED_HOOKS", "Framework"]

REQUIRED_HOOKS = ("ketch_load", "ketch_place", "ketch_signature", "ketch_batch_predict")
"""The hooks a framework plugin must implement (``ketch_observe``, ``ketch_unload``: optional)."""


def _is_local_path(path: str) -> bool:
    return "://" not in path


class Framework:
    """One framework plugin and the cross-cutting plugins around it.

    Each method calls one hook through pluggy, so that wrapper plugins see every
    call, and turns a missing answer into a clear error.
    """

    def __init__(self, name: str, manager: KetchPluginManager, plugin: object) -> None:
        self.name = name
        self.manager = manager
        self.plugin = plugin
        implemented = manager.hook_options(plugin)
        missing = [hook for hook in REQUIRED_HOOKS if hook not in implemented]
        if missing:
            raise PluginError(
                f"plugin {name!r} does not implement the required hook(s) {', '.join(missing)}"
            )
        self.observes = "ketch_observe" in implemented

    def try_load(self, spec: ModelSpec) -> object | None:
        """The plugin's handle for the model, or None when the plugin does not recognise it.

        A plugin that recognises the model but cannot load it raises ModelLoadError
        (any other exception it raises becomes one, naming the file and the cause).
        """
        if _is_local_path(spec.path) and not Path(spec.path).exists():
            raise ModelLoadError(f"model {spec.name!r}: no file or directory at {spec.path!r}")
        try:
            model = self.manager.hook.ketch_load(spec=spec)
        except KetchError:
            raise
        except Exception as error:
            raise ModelLoadError(
                f"plugin {self.name!r} failed to load {spec.path!r}: "
                f"{type(error).__name__}: {error}"
            ) from error
        return model  # type: ignore[no-any-return]

    def load(self, spec: ModelSpec) -> object:
        """The plugin's handle for the model, or ModelLoadError naming the file and the cause."""
        model = self.try_load(spec)
        if model is None:
            raise ModelLoadError(
                f"plugin {self.name!r} does not recognise the model at {spec.path!r}"
            )
        return model

    def place(self, model: object, device: str) -> object:
        """The model's handle on ``device``; DeviceUnavailableError when it cannot go there."""
        placed = self.manager.hook.ketch_place(model=model, device=device)
        if placed is None:
            raise ContractViolation(f"plugin {self.name!r} returned None from ketch_place")
        return placed

    def signature(self, model: object) -> Signature:
        """The model's signature."""
        signature = self.manager.hook.ketch_signature(model=model)
        if not isinstance(signature, Signature):
            raise ContractViolation(
                f"plugin {self.name!r} returned {type(signature).__name__} from "
                "ketch_signature, not a ketch.Signature"
            )
        return signature

    def batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> Mapping[str, np.ndarray]:
        """The plugin's outputs for one batch, unchecked (see ``ketch.validate_outputs``)."""
        outputs = self.manager.hook.ketch_batch_predict(model=model, inputs=inputs)
        if outputs is None:
            raise ContractViolation(f"plugin {self.name!r} returned None from ketch_batch_predict")
        return outputs  # type: ignore[no-any-return]

    def observe(self, model: object, inputs: Mapping[str, np.ndarray], labels: np.ndarray) -> bool:
        """Whether learning from the labelled rows changed the model."""
        if not self.observes:
            raise PluginError(f"plugin {self.name!r} does not learn online (no ketch_observe)")
        changed = self.manager.hook.ketch_observe(model=model, inputs=inputs, labels=labels)
        if changed is None:
            raise ContractViolation(f"plugin {self.name!r} returned None from ketch_observe")
        return bool(changed)

    def example_inputs(self, model: object, rows: int) -> Mapping[str, np.ndarray] | None:
        """The plugin's own sample rows for the model, or None when it offers none."""
        examples = self.manager.hook.ketch_example_inputs(model=model, rows=rows)
        return examples  # type: ignore[no-any-return]

    def unload(self, model: object) -> None:
        """Let every plugin release the model (save its state, free its memory)."""
        self.manager.hook.ketch_unload(model=model)
