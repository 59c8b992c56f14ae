from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from vw_test_models import MODELS, TrainedModel, train_model

from ketch import Framework, select_framework


@pytest.fixture(scope="session")
def framework() -> Framework:
    """The vw plugin, selected as ``ketch serve vw`` selects it."""
    return select_framework("vw")


@pytest.fixture(scope="session")
def vw_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TrainedModel]:
    """Every model in vw_test_models.MODELS, trained once and saved; never modified."""
    folder = tmp_path_factory.mktemp("vw-models")
    return {name: train_model(name, folder) for name in MODELS}


@pytest.fixture
def model_copy(vw_models: dict[str, TrainedModel], tmp_path: Path) -> Callable[[str], TrainedModel]:
    """A private copy of a trained model, for tests that let it learn and save."""
    counter = iter(range(1_000))

    def copy(name: str) -> TrainedModel:
        return vw_models[name].copy_to(tmp_path / f"{name}-{next(counter)}")

    return copy
