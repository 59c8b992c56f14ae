"""The pytest plugin: command-line options and fixtures for the conformance suite.

Inert unless it is given a target: ``--ketch-plugin`` and ``--ketch-model`` on the
command line, or a ``ketch_target`` fixture that a plugin's own tests define.
When the options are given and pytest is given no paths, it runs the suite.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ketch import WrapperProcess, start_wrapper
from ketch_conformance.checks import CheckContext
from ketch_conformance.samples import random_inputs
from ketch_conformance.subjects import GrpcSubject, InProcessSubject, load_in_process
from ketch_conformance.target import ConformanceTarget

__all__ = [
    "ketch_grpc",
    "ketch_grpc_context",
    "ketch_in_process",
    "ketch_in_process_context",
    "ketch_sample_inputs",
    "ketch_target",
    "ketch_wrapper",
    "pytest_addoption",
    "pytest_configure",
]

SUITE_PATH = Path(__file__).with_name("suite.py")


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--ketch-plugin``, ``--ketch-model``, ``--ketch-device``, ``--ketch-option``."""
    group = parser.getgroup("ketch-conformance", "Ketch conformance suite")
    group.addoption("--ketch-plugin", help="the plugin to check: an installed name or module:attr")
    group.addoption("--ketch-model", help="the model file the plugin loads")
    group.addoption("--ketch-device", default="cpu", help="where to place the model (default cpu)")
    group.addoption(
        "--ketch-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a plugin option (repeatable)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Run the suite when a target is given on the command line and no paths are."""
    if config.getoption("ketch_plugin") and config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(SUITE_PATH)]


def _options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise pytest.UsageError(f"--ketch-option expects KEY=VALUE, got {pair!r}")
        options[key] = value
    return options


@pytest.fixture(scope="module")
def ketch_target(request: pytest.FixtureRequest) -> ConformanceTarget:
    """The target named on the command line; override it in a plugin's own tests."""
    plugin = request.config.getoption("ketch_plugin")
    model = request.config.getoption("ketch_model")
    if not plugin or not model:
        pytest.skip("no conformance target: pass --ketch-plugin and --ketch-model")
    return ConformanceTarget(
        plugin=plugin,
        model_path=model,
        device=request.config.getoption("ketch_device"),
        options=_options(request.config.getoption("ketch_option")),
    )


@pytest.fixture(scope="module")
def ketch_in_process(ketch_target: ConformanceTarget) -> InProcessSubject:
    """The target's model, loaded through its hooks in this process."""
    return load_in_process(ketch_target)


@pytest.fixture(scope="module")
def ketch_sample_inputs(
    ketch_target: ConformanceTarget, ketch_in_process: InProcessSubject
) -> dict[str, np.ndarray]:
    """The target's sample rows, or random rows that fit its signature."""
    if ketch_target.sample_inputs is not None:
        return dict(ketch_target.sample_inputs)
    return dict(random_inputs(ketch_in_process.signature))


@pytest.fixture(scope="module")
def ketch_in_process_context(
    ketch_target: ConformanceTarget,
    ketch_in_process: InProcessSubject,
    ketch_sample_inputs: dict[str, np.ndarray],
) -> CheckContext:
    """The context for in-process checks."""
    return CheckContext(
        subject=ketch_in_process,
        inputs=ketch_sample_inputs,
        tolerance=ketch_in_process.signature.capabilities.tolerance,
        target=ketch_target,
    )


@pytest.fixture(scope="module")
def ketch_wrapper(ketch_target: ConformanceTarget) -> Iterator[WrapperProcess]:
    """A ``ketch serve`` process for the target, stopped after the module."""
    process = start_wrapper(
        ketch_target.plugin,
        ketch_target.model_path,
        device=ketch_target.device,
        options=ketch_target.options,
        env=ketch_target.env,
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def ketch_grpc(
    ketch_wrapper: WrapperProcess, ketch_in_process: InProcessSubject
) -> Iterator[GrpcSubject]:
    """A client for the target's wrapper process."""
    subject = GrpcSubject(ketch_wrapper, ketch_in_process.signature)
    yield subject
    subject.close()


@pytest.fixture(scope="module")
def ketch_grpc_context(
    ketch_target: ConformanceTarget,
    ketch_grpc: GrpcSubject,
    ketch_sample_inputs: dict[str, np.ndarray],
) -> CheckContext:
    """The context for gRPC checks."""
    return CheckContext(
        subject=ketch_grpc,
        inputs=ketch_sample_inputs,
        tolerance=ketch_grpc.signature.capabilities.tolerance,
        target=ketch_target,
    )
