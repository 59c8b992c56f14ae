"""Recognising a LightGBM model file and loading it (this module imports lightgbm)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import lightgbm

from ketch import ModelLoadError, ModelSpec
from ketch_lightgbm.model import LightGBMModel
from ketch_lightgbm.options import LightGBMOptions

__all__ = ["is_lightgbm_file", "load_model"]

FIRST_LINE: Final = b"tree"
"""How a LightGBM text model file (``Booster.save_model``) begins."""


def is_lightgbm_file(path: Path) -> bool:
    """Whether ``path`` is a file that starts as LightGBM's text model files do."""
    if not path.is_file():
        return False
    with path.open("rb") as file:
        return file.readline().rstrip(b"\r\n") == FIRST_LINE


def load_model(spec: ModelSpec) -> LightGBMModel | None:
    """The booster ``spec`` names, or None when the file is not a LightGBM model."""
    path = Path(spec.path)
    if not is_lightgbm_file(path):
        return None
    options = LightGBMOptions.from_spec(spec)
    try:
        booster = lightgbm.Booster(model_file=str(path))
    except lightgbm.basic.LightGBMError as error:
        raise ModelLoadError(f"{path}: LightGBM cannot load this model file: {error}") from error
    iterations = booster.current_iteration()
    if options.num_iteration is not None and options.num_iteration > iterations:
        raise ModelLoadError(
            f"option num_iteration={options.num_iteration}: {path} has only {iterations} "
            "boosting iterations"
        )
    return LightGBMModel(booster, options)
