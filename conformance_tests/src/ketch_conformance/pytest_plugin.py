"""The pytest plugin: command-line options and fixtures for the conformance suite.

Inert unless it is given a target: ``--ketch-plugin`` (with ``--ketch-model``, or a
plugin that builds its own targets through the ``pytest_ketch_conformance_targets`` hook)
on the command line, or a ``ketch_target`` fixture that a plugin's own tests
define. When a plugin is given and pytest is given no paths, it runs the suite.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest

from ketch import WrapperProcess, start_wrapper
from ketch_conformance import factory_hooks
from ketch_conformance.checks import CheckContext
from ketch_conformance.expected_failures import read_expected_failures
from ketch_conformance.factory_hooks import FACTORY_GROUP, TargetFactory
from ketch_conformance.samples import random_inputs, take_rows
from ketch_conformance.session import MAY_SKIP_MARKER, ConformanceSession
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
    "pytest_addhooks",
    "pytest_addoption",
    "pytest_configure",
    "pytest_generate_tests",
]

SUITE_PATH = Path(__file__).with_name("suite.py")
_FACTORIES = pytest.StashKey[Mapping[str, TargetFactory]]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """The model-factory hook, ``pytest_ketch_conformance_targets``."""
    pluginmanager.add_hookspecs(factory_hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ``--ketch-*`` options and the ``ketch_strict`` ini setting."""
    group = parser.getgroup("ketch-conformance", "Ketch conformance suite")
    group.addoption("--ketch-plugin", help="the plugin to check: an installed name or module:attr")
    group.addoption(
        "--ketch-model",
        help="the model file the plugin loads (default: the targets the plugin's "
        "pytest_ketch_conformance_targets hook builds)",
    )
    group.addoption("--ketch-device", default="cpu", help="where to place the model (default cpu)")
    group.addoption(
        "--ketch-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a plugin option (repeatable)",
    )
    group.addoption(
        "--ketch-inputs", metavar="FILE.npz", help="sample rows: one array per input name"
    )
    group.addoption(
        "--ketch-labels", metavar="FILE.npy", help="one label per sample row, for observe checks"
    )
    group.addoption(
        "--ketch-strict",
        action="store_true",
        default=None,
        help="certification: a skipped check fails (not-applicable tiers still do not run)",
    )
    group.addoption("--ketch-report", metavar="FILE", help="write the results as JSON")
    group.addoption(
        "--ketch-xfail",
        metavar="FILE",
        help="expected failures: one check name per line, then the reason",
    )
    parser.addini(
        "ketch_strict", type="bool", default=False, help="run the conformance suite strictly"
    )


def _strict(config: pytest.Config) -> bool:
    option = config.getoption("ketch_strict")
    return bool(config.getini("ketch_strict") if option is None else option)


def _register_target_factories(config: pytest.Config, plugin: str) -> None:
    """Load the plugin's own ``ketch.conformance`` entry point, if it has one."""
    for entry_point in entry_points(group=FACTORY_GROUP, name=plugin):
        config.pluginmanager.register(entry_point.load(), f"ketch-conformance-{plugin}")


def pytest_configure(config: pytest.Config) -> None:
    """Set up strict mode, expected failures and the report; run the suite for a CLI target."""
    config.addinivalue_line(
        "markers",
        f"{MAY_SKIP_MARKER}(reason): the module's conformance target may be missing on this "
        "machine; a skip while setting it up does not fail strict mode",
    )
    plugin = config.getoption("ketch_plugin")
    if plugin and config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(SUITE_PATH)]
    if plugin and not config.getoption("ketch_model"):
        _register_target_factories(config, plugin)
        _target_factories(config, plugin)
    xfail_file = config.getoption("ketch_xfail")
    try:
        expected = read_expected_failures(xfail_file) if xfail_file else []
    except (OSError, ValueError) as error:
        raise pytest.UsageError(f"--ketch-xfail: {error}") from error
    report = config.getoption("ketch_report")
    about = {
        "plugin": plugin,
        "model": config.getoption("ketch_model"),
        "device": config.getoption("ketch_device"),
    }
    session = ConformanceSession(
        strict=_strict(config),
        expected_failures=expected,
        report_path=Path(report) if report else None,
        about=about,
    )
    config.pluginmanager.register(session, "ketch-conformance-session")


def _target_factories(config: pytest.Config, plugin: str) -> Mapping[str, TargetFactory]:
    if _FACTORIES not in config.stash:
        factories = config.hook.pytest_ketch_conformance_targets(plugin=plugin, config=config)
        if not factories:
            raise pytest.UsageError(
                f"--ketch-plugin {plugin} without --ketch-model: pass a model, or give the plugin "
                f"a pytest_ketch_conformance_targets hook (entry-point group {FACTORY_GROUP!r})"
            )
        config.stash[_FACTORIES] = dict(factories)
    return config.stash[_FACTORIES]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Without ``--ketch-model``, one run of the suite per target the plugin's hook builds."""
    config = metafunc.config
    plugin = config.getoption("ketch_plugin")
    if not plugin or config.getoption("ketch_model") or "ketch_target" not in metafunc.fixturenames:
        return
    factories = _target_factories(config, plugin)
    metafunc.parametrize("ketch_target", list(factories), indirect=True, scope="module")


def _options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise pytest.UsageError(f"--ketch-option expects KEY=VALUE, got {pair!r}")
        options[key] = value
    return options


def _command_line_target(config: pytest.Config, plugin: str, model: str) -> ConformanceTarget:
    inputs_file = config.getoption("ketch_inputs")
    labels_file = config.getoption("ketch_labels")
    inputs = None
    if inputs_file:
        with np.load(inputs_file, allow_pickle=False) as archive:
            inputs = {name: archive[name] for name in archive.files}
    labels = np.load(labels_file, allow_pickle=False) if labels_file else None
    return ConformanceTarget(
        plugin=plugin,
        model_path=model,
        device=config.getoption("ketch_device"),
        options=_options(config.getoption("ketch_option")),
        sample_inputs=inputs,
        sample_labels=labels,
    )


def _built_target(
    request: pytest.FixtureRequest, plugin: str, tmp_path_factory: pytest.TempPathFactory
) -> ConformanceTarget:
    """The target that the plugin's factory ``request.param`` builds, with the CLI's settings."""
    config = request.config
    name = str(request.param)
    target = _target_factories(config, plugin)[name](tmp_path_factory.mktemp(name))
    options = {**target.options, **_options(config.getoption("ketch_option"))}
    device = config.getoption("ketch_device")
    return dataclasses.replace(
        target, options=options, device=device if device != "cpu" else target.device
    )


@pytest.fixture(scope="module")
def ketch_target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> ConformanceTarget:
    """The target named on the command line; override it in a plugin's own tests."""
    plugin = request.config.getoption("ketch_plugin")
    model = request.config.getoption("ketch_model")
    if plugin and hasattr(request, "param"):
        return _built_target(request, plugin, tmp_path_factory)
    if not plugin or not model:
        pytest.skip("no conformance target: pass --ketch-plugin (and --ketch-model)")
    return _command_line_target(request.config, plugin, model)


@pytest.fixture(scope="module")
def ketch_in_process(ketch_target: ConformanceTarget) -> InProcessSubject:
    """The target's model, loaded through its hooks in this process."""
    return load_in_process(ketch_target)


@pytest.fixture(scope="module")
def ketch_sample_inputs(
    ketch_target: ConformanceTarget, ketch_in_process: InProcessSubject
) -> dict[str, np.ndarray]:
    """The target's sample rows (at most ``max_batch``), or random rows that fit its signature."""
    if ketch_target.sample_inputs is not None:
        inputs = dict(ketch_target.sample_inputs)
    else:
        inputs = dict(random_inputs(ketch_in_process.signature))
    max_batch = ketch_in_process.signature.capabilities.max_batch
    if max_batch is not None and len(next(iter(inputs.values()))) > max_batch:
        inputs = take_rows(inputs, slice(0, max_batch))
    return inputs


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
    ketch_in_process: InProcessSubject,
    ketch_sample_inputs: dict[str, np.ndarray],
) -> CheckContext:
    """The context for gRPC checks, with the in-process subject to compare the wire against."""
    return CheckContext(
        subject=ketch_grpc,
        inputs=ketch_sample_inputs,
        tolerance=ketch_grpc.signature.capabilities.tolerance,
        target=ketch_target,
        reference=ketch_in_process,
    )
