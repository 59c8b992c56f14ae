"""What a model takes and gives: tensor specs, capabilities and the signature."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ketch.datatypes import DATATYPES

__all__ = [
    "LABEL_KINDS",
    "VARIABLE",
    "Capabilities",
    "DimensionRange",
    "LabelSpec",
    "Signature",
    "TensorSpec",
    "Tolerance",
]

VARIABLE = -1
"""The dimension size that marks a variable dimension (always the batch dimension, axis 0)."""


@dataclass(frozen=True, slots=True)
class DimensionRange:
    """The sizes a variable dimension accepts: ``minimum`` to ``maximum``, both included.

    ``maximum`` None means no upper bound. Dimensions that share a ``name``, in one
    tensor or across the inputs, must have the same size in a call (a
    ``torch.export`` program whose two inputs share ``Dim("seq")``, say).
    """

    minimum: int = 0
    maximum: int | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if self.minimum < 0:
            raise ValueError(f"a dimension's minimum size cannot be negative, got {self.minimum}")
        if self.maximum is not None and self.maximum < self.minimum:
            raise ValueError(
                f"a dimension's maximum size {self.maximum} is below its minimum {self.minimum}"
            )

    def accepts(self, size: int) -> bool:
        """Whether ``size`` lies inside the range."""
        return size >= self.minimum and (self.maximum is None or size <= self.maximum)

    def describe(self) -> str:
        """The range in words: ``16 to 512``, ``at least 2``."""
        if self.maximum is None:
            return f"at least {self.minimum}"
        if self.maximum == self.minimum:
            return f"exactly {self.minimum}"
        return f"{self.minimum} to {self.maximum}"


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One named input or output tensor.

    ``shape`` includes the leading batch dimension, which is always ``-1``;
    any other ``-1`` marks a dimension that varies from call to call.
    ``ranges``, when given, has one entry per dimension: a :class:`DimensionRange`
    for a variable dimension whose sizes are bounded, None for the others (the
    batch dimension's bounds are ``Capabilities.max_batch``'s business).
    """

    name: str
    datatype: str
    shape: tuple[int, ...]
    ranges: tuple[DimensionRange | None, ...] = ()

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
        object.__setattr__(self, "ranges", tuple(self.ranges))
        self._check_ranges()

    def _check_ranges(self) -> None:
        if not self.ranges:
            return
        if len(self.ranges) != len(self.shape):
            raise ValueError(
                f"tensor {self.name!r}: {len(self.ranges)} ranges for the {len(self.shape)} "
                f"dimensions of shape {list(self.shape)}; give one per dimension (None: none)"
            )
        if self.ranges[0] is not None:
            raise ValueError(
                f"tensor {self.name!r}: the batch dimension takes no range; bound the rows of a "
                "call with Capabilities(max_batch=...)"
            )
        for axis, (size, bounds) in enumerate(zip(self.shape, self.ranges, strict=True)):
            if bounds is not None and size != VARIABLE:
                raise ValueError(
                    f"tensor {self.name!r}: dimension {axis} has the fixed size {size}, so it "
                    "takes no range"
                )

    def range_of(self, axis: int) -> DimensionRange | None:
        """The range of dimension ``axis`` (counting the batch as 0), or None."""
        return self.ranges[axis] if self.ranges else None

    def range_misfit(self, shape: tuple[int, ...]) -> str | None:
        """Why a batch of ``shape`` falls outside the ranges (None when it does not)."""
        for axis, bounds in enumerate(self.ranges):
            if bounds is not None and axis < len(shape) and not bounds.accepts(shape[axis]):
                named = f" ({bounds.name!r})" if bounds.name else ""
                return (
                    f"dimension {axis}{named} is {shape[axis]}; the model takes {bounds.describe()}"
                )
        return None

    @property
    def row_shape(self) -> tuple[int, ...]:
        """The shape of one row: ``shape`` without the batch dimension."""
        return self.shape[1:]

    def accepts_row_shape(self, row_shape: tuple[int, ...]) -> bool:
        """Whether rows of ``row_shape`` fit this spec (``-1`` matches any size in its range)."""
        return (
            len(row_shape) == len(self.row_shape)
            and all(
                want in (VARIABLE, got) for want, got in zip(self.row_shape, row_shape, strict=True)
            )
            and self.range_misfit((0, *row_shape)) is None
        )


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How close two outputs must be to count as equal: ``|a - b| <= atol + rtol * |b|``.

    A plugin declares it for outputs that floating-point arithmetic may perturb
    (a batch of N computed together against N single rows, say).
    """

    rtol: float = 1e-5
    atol: float = 1e-8


LABEL_KINDS = ("classes", "numbers", "bandit")
"""What a :class:`LabelSpec` may say a model learns from."""


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """The labels ``ketch_observe`` takes, so that a caller can map its own labels onto them.

    - ``classes``: one whole number per row, one of ``classes``, listed in the model's
      class order: a caller that numbers its classes 0 to K-1 sends ``classes[i]``
      for its class ``i`` (Vowpal Wabbit's ``--oaa 10`` takes 1 to 10; ``--binary``
      takes -1 and 1). Outputs that name a class use the same numbers.
    - ``numbers``: one real number per row (a regression target).
    - ``bandit``: one row of ``(action index from 0, cost, probability)`` per input
      row, shape ``[-1, 3]`` (a contextual bandit's logged decision).
    """

    kind: str
    classes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(int(label) for label in self.classes))
        if self.kind not in LABEL_KINDS:
            raise ValueError(
                f"unknown label kind {self.kind!r}; expected one of {', '.join(LABEL_KINDS)}"
            )
        if self.kind == "classes" and not self.classes:
            raise ValueError("a LabelSpec of kind 'classes' lists the classes it takes")
        if self.kind != "classes" and self.classes:
            raise ValueError(f"a LabelSpec of kind {self.kind!r} lists no classes")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"a class label is listed twice in {list(self.classes)}")

    def describe(self) -> str:
        """The labels in words, for error messages."""
        if self.kind == "numbers":
            return "a number per row"
        if self.kind == "bandit":
            return "a row of (action index from 0, cost, probability) per row"
        ordered = sorted(self.classes)
        if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 2:
            return f"classes {ordered[0]} to {ordered[-1]}"
        return f"classes {', '.join(map(str, self.classes))}"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a loaded model can do beyond prediction.

    ``devices`` lists where the plugin can place it (``cpu``, ``cuda``, ``cuda:N``,
    ``mps``, ...); ``observe`` says whether it learns online through
    ``ketch_observe``; ``max_batch`` bounds the rows of one call (None: no bound);
    ``persists_observations`` says that what it learnt survives a restart (it is
    saved by ``ketch_unload`` and loaded again by ``ketch_load``); ``labels`` says
    which labels ``ketch_observe`` takes (None: the plugin does not say).
    """

    devices: tuple[str, ...] = ("cpu",)
    observe: bool = False
    max_batch: int | None = None
    tolerance: Tolerance = field(default_factory=Tolerance)
    persists_observations: bool = False
    labels: LabelSpec | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "devices", tuple(self.devices))
        if self.max_batch is not None and self.max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {self.max_batch}")
        if self.persists_observations and not self.observe:
            raise ValueError("persists_observations needs observe: only a learning model persists")
        if self.labels is not None and not self.observe:
            raise ValueError("labels needs observe: only a learning model takes labels")


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
