"""The plugin's model handle. It imports no PyTorch, so the hooks can recognise it cheaply."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ketch import Signature

__all__ = ["PLATFORM", "TorchModel"]

PLATFORM: Final = "pytorch"


@dataclass(frozen=True, slots=True)
class TorchModel:
    """A loaded model: the module to call, its signature, and where and how it runs.

    ``output_keys`` pick each declared output out of what the module returns: a
    dictionary key, a position in a tuple, or None when it returns one tensor.
    ``program`` is what was read from the file, kept so that placing the model
    again starts from the original rather than from a moved copy; ``placed``
    says whether ``ketch_place`` has run on this handle.
    """

    path: Path
    file_format: str
    program: Any
    module: Any
    signature: Signature
    output_keys: tuple[str | int | None, ...]
    fixed_batch: int | None
    compute_dtype: str | None
    device: str = "cpu"
    placed: bool = False
