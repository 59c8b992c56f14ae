"""What a model takes and gives: tensor specs, capabilities and the signature."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ketch.datatypes import DATATYPES

__all__ = ["VARIABLE", "Capabilities", "Signature", "TensorSpec", "Tolerance"]

VARIABLE = -1
"""The dimension size that marks a variable dimension (always the batch dimension, axis 0)."""


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One named input or output tensor.

    ``shape`` includes the leading batch dimension, which is always ``-1``;
    any other ``-1`` marks a dimension that varies from call to call.
    """

    name: str
    datatype: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a tensor needs a name")
        if self.datatype not in DATATYPES:
            raise ValueError(
                f"tensor {self.name!r}: unknown datatype {self.datatype!r}; "
                f"expected one of {', '.join(DATATYPES)}"
            )
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if not self.shape or self.shape[0] != VARIABLE:
            raise ValueError(
                f"tensor {self.name!r}: shape {list(self.shape)} must start with the batch "
                "dimension -1"
            )
        if any(d < VARIABLE for d in self.shape):
            raise ValueError(f"tensor {self.name!r}: shape {list(self.shape)} has a size below -1")

    @property
    def row_shape(self) -> tuple[int, ...]:
        """The shape of one row: ``shape`` without the batch dimension."""
        return self.shape[1:]

    def accepts_row_shape(self, row_shape: tuple[int, ...]) -> bool:
        """Whether rows of ``row_shape`` fit this spec (``-1`` matches any size)."""
        return len(row_shape) == len(self.row_shape) and all(
            want in (VARIABLE, got) for want, got in zip(self.row_shape, row_shape, strict=True)
        )


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How close two outputs must be to count as equal: ``|a - b| <= atol + rtol * |b|``.

    A plugin declares it for outputs that floating-point arithmetic may perturb
    (a batch of N computed together against N single rows, say).
    """

    rtol: float = 1e-5
    atol: float = 1e-8


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a loaded model can do beyond prediction.

    ``devices`` lists where the plugin can place it (``cpu``, ``cuda``, ``cuda:N``,
    ``mps``, ...); ``observe`` says whether it learns online through
    ``ketch_observe``; ``max_batch`` bounds the rows of one call (None: no bound);
    ``persists_observations`` says that what it learnt survives a restart (it is
    saved by ``ketch_unload`` and loaded again by ``ketch_load``).
    """

    devices: tuple[str, ...] = ("cpu",)
    observe: bool = False
    max_batch: int | None = None
    tolerance: Tolerance = field(default_factory=Tolerance)
    persists_observations: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "devices", tuple(self.devices))
        if self.max_batch is not None and self.max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {self.max_batch}")
        if self.persists_observations and not self.observe:
            raise ValueError("persists_observations needs observe: only a learning model persists")


@dataclass(frozen=True, slots=True)
class Signature:
    """A loaded model's named inputs and outputs, platform and capabilities."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    capabilities: Capabilities = field(default_factory=Capabilities)
    platform: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        if not self.inputs:
            raise ValueError("a signature needs at least one input")
        if not self.outputs:
            raise ValueError("a signature needs at least one output")
        for kind, specs in (("input", self.inputs), ("output", self.outputs)):
            names = [spec.name for spec in specs]
            duplicates = sorted({name for name in names if names.count(name) > 1})
            if duplicates:
                raise ValueError(f"duplicate {kind} names: {', '.join(duplicates)}")

    @property
    def input_specs(self) -> Mapping[str, TensorSpec]:
        """Inputs by name, in declaration order."""
        return {spec.name: spec for spec in self.inputs}

    @property
    def output_specs(self) -> Mapping[str, TensorSpec]:
        """Outputs by name, in declaration order."""
        return {spec.name: spec for spec in self.outputs}

    @property
    def output_datatypes(self) -> dict[str, str]:
        """Each output's OIP datatype, by name, in declaration order."""
        return {spec.name: spec.datatype for spec in self.outputs}
