"""One loaded model behind the contract's checks: the core of a wrapper process."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from ketch.calls import current_call
from ketch.errors import InvalidInputError
from ketch.framework import Framework
from ketch.model_directory import load_model
from ketch.model_spec import ModelSpec
from ketch.signature import Signature
from ketch.validation import validate_inputs, validate_labels, validate_outputs

__all__ = ["ModelRuntime"]


def _smallest(*bounds: int | None) -> int | None:
    present = [bound for bound in bounds if bound is not None]
    return min(present) if present else None


class ModelRuntime:
    """A model loaded, placed and described by its framework plugin.

    Every call is checked against the signature on the way in (bad input raises
    InvalidInputError) and on the way out (a plugin that breaks the contract
    raises ContractViolation), so neither fault can pass silently.
    """

    def __init__(
        self,
        framework: Framework,
        spec: ModelSpec,
        model: object,
        signature: Signature,
    ) -> None:
        self.framework = framework
        self.spec = spec
        self.model = model
        self.signature = signature
        self._plugin_label = f"plugin {framework.name!r}"

    @classmethod
    def load(
        cls,
        framework: Framework,
        spec: ModelSpec,
        *,
        max_batch: int | None = None,
    ) -> ModelRuntime:
        """Load, place on ``spec.device`` and describe the model; cap its batch at ``max_batch``.

        A directory that the plugin does not load as a whole must hold one model: see
        :func:`ketch.model_directory.load_model`; the runtime's spec names that file.
        """
        spec, model = load_model(framework, spec)
        model = framework.place(model, spec.device)
        signature = framework.signature(model)
        capabilities = signature.capabilities
        bound = _smallest(capabilities.max_batch, max_batch)
        if bound != capabilities.max_batch:
            capabilities = dataclasses.replace(capabilities, max_batch=bound)
            signature = dataclasses.replace(signature, capabilities=capabilities)
        return cls(framework, spec, model, signature)

    @property
    def name(self) -> str:
        """The model's name."""
        return self.spec.name

    @property
    def version(self) -> str:
        """The model's version."""
        return self.spec.version

    @property
    def observes(self) -> bool:
        """Whether the model learns online."""
        return self.framework.observes and self.signature.capabilities.observe

    def _check_rows(self, inputs: Mapping[str, np.ndarray]) -> int:
        rows = validate_inputs(self.signature, inputs)
        max_batch = self.signature.capabilities.max_batch
        if max_batch is not None and rows > max_batch:
            raise InvalidInputError(
                f"a batch of {rows} rows exceeds model {self.name!r}'s maximum batch of {max_batch}"
            )
        return rows

    def predict(
        self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """The outputs for a batch: all declared ones, or those named in ``outputs``.

        The plugin is not called when the current call (:func:`ketch.current_call`) is
        already over: CallCancelled says so instead.
        """
        if outputs:
            declared = self.signature.output_specs
            unknown = [name for name in outputs if name not in declared]
            if unknown:
                raise InvalidInputError(
                    f"unknown output(s) {', '.join(map(repr, unknown))}; model "
                    f"{self.name!r} has {', '.join(map(repr, declared))}"
                )
        rows = self._check_rows(inputs)
        current_call().check(f"a batch of {rows} rows")
        produced = self.framework.batch_predict(self.model, inputs)
        checked = validate_outputs(self.signature, produced, rows, plugin=self._plugin_label)
        if outputs:
            return {name: checked[name] for name in outputs}
        return checked

    def unload(self) -> None:
        """Release the model through the plugins' ``ketch_unload`` hooks."""
        self.framework.unload(self.model)

    def observe(self, inputs: Mapping[str, np.ndarray], labels: np.ndarray) -> bool:
        """Learn from labelled rows; whether the model changed."""
        if not self.observes:
            raise InvalidInputError(f"model {self.name!r} does not learn online")
        rows = self._check_rows(inputs)
        validate_labels(labels, rows)
        return self.framework.observe(self.model, inputs, labels)
