"""The pytest hook a plugin under test implements so that the suite can build its own targets.

With ``--ketch-plugin NAME`` and no ``--ketch-model`` (or ``ketch conformance NAME``
with no model), the suite asks this hook for targets. Implement it in a module
that you register under the entry-point group ``ketch.conformance`` with your
plugin's name (the suite loads it only when it checks that plugin), or in any
pytest plugin or ``conftest.py``::

    # pyproject.toml
    [project.entry-points."ketch.conformance"]
    myframework = "ketch_myframework.conformance"

    # ketch_myframework/conformance.py
    def pytest_ketch_conformance_targets(plugin, config):
        if plugin != "myframework":
            return None
        return {"small": make_small_target}

    def make_small_target(folder: Path) -> ConformanceTarget:
        path = train_a_tiny_model_into(folder)
        return ConformanceTarget("myframework", path, sample_inputs=...)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from ketch_conformance.target import ConformanceTarget

__all__ = ["FACTORY_GROUP", "TargetFactory", "pytest_ketch_conformance_targets"]

FACTORY_GROUP = "ketch.conformance"
"""The entry-point group of modules that implement :func:`pytest_ketch_conformance_targets`."""

TargetFactory = Callable[[Path], ConformanceTarget]
"""Builds one target in an empty folder it is given (train and save a tiny model there)."""


@pytest.hookspec(firstresult=True)
def pytest_ketch_conformance_targets(
    plugin: str, config: pytest.Config
) -> Mapping[str, TargetFactory] | None:
    """The targets to check ``plugin`` on, by id, or None when ``plugin`` is not yours.

    Called once, while pytest collects, when the suite is given ``--ketch-plugin``
    without ``--ketch-model``. Each factory is called once, when the first check of
    its target runs, with an empty folder of its own. Stops at the first non-None
    result.

    :param plugin: the plugin named by ``--ketch-plugin``.
    :param config: the pytest config (``--ketch-device`` and ``--ketch-option`` are
        applied to the targets the factories return).
    """
