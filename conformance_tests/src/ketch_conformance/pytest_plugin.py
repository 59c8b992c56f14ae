"""The pytest plugin: command-line options and fixtures for the conformance suite.

Inert unless it is given a target: ``--ketch-plugin`` (with ``--ketch-model``, or a
plugin that builds its own targets through the ``pytest_ketch_conformance_targets`` hook)
on the command line, or a ``ketch_target`` fixture that a plugin's own tests
define. When a plugin is given and pytest is given no paths, it runs the suite.

The plugin never runs in pytest's process: the in-process checks call its hooks
in a worker process (:mod:`ketch_conformance.isolation`), the gRPC checks a
``ketch serve`` process. A problem with the run's own rows or labels given on the
command line is a usage error that stops the run (exit status 4), never a failure
of the plugin.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Final, NoReturn

import numpy as np
import pytest

from ketch import InvalidInputError, WrapperProcess, start_wrapper
from ketch_conformance import factory_hooks
from ketch_conformance.checks import CheckContext
from ketch_conformance.expected_failures import read_expected_failures
from ketch_conformance.factory_hooks import FACTORY_GROUP, TargetFactory
from ketch_conformance.isolation import IsolatedSubject
from ketch_conformance.probes import read_only
from ketch_conformance.sample_inputs import (
    RANDOM,
    SampleInputsError,
    check_labels,
    choose_sample_inputs,
    read_inputs_file,
    read_labels_file,
)
from ketch_conformance.session import MAY_SKIP_MARKER, SESSION_NAME, ConformanceSession
from ketch_conformance.subjects import GrpcSubject, InProcessSubject
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
_COMMAND_LINE_ROWS = pytest.StashKey[tuple[dict[str, np.ndarray] | None, np.ndarray | None]]()
_COMMAND_LINE_TARGET = pytest.StashKey[ConformanceTarget]()
NO_VALID_SAMPLE: Final = (
    "give sample rows: a file of rows (ketch conformance --inputs FILE, or pytest "
    "--ketch-inputs FILE; .npz, .json or .jsonl), ConformanceTarget.sample_inputs, or a "
    "ketch_example_inputs hook in the plugin"
)


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
        "--ketch-inputs",
        metavar="FILE",
        help="sample rows, by input name: .npz (text as unicode arrays), .json or .jsonl",
    )
    group.addoption(
        "--ketch-labels",
        metavar="FILE",
        help="one label per sample row, for observe checks: .npy or .json",
    )
    group.addoption(
        "--ketch-call-timeout",
        type=float,
        metavar="SECONDS",
        help="how long one plugin call may take before its check fails with no answer "
        "(default: the target's, 60 s)",
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
    if plugin and config.getoption("ketch_model"):
        config.stash[_COMMAND_LINE_ROWS] = _read_rows(config)
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
    config.pluginmanager.register(session, SESSION_NAME)


def _read_rows(config: pytest.Config) -> tuple[dict[str, np.ndarray] | None, np.ndarray | None]:
    """The command line's rows and labels files, read; a usage error when one cannot be."""
    inputs_file = config.getoption("ketch_inputs")
    labels_file = config.getoption("ketch_labels")
    try:
        inputs = read_inputs_file(inputs_file) if inputs_file else None
        labels = read_labels_file(labels_file) if labels_file else None
    except SampleInputsError as error:
        raise pytest.UsageError(str(error)) from error
    return inputs, labels


def _usage_error(config: pytest.Config, message: str) -> NoReturn:
    """Stop the run: its own inputs are at fault (the report says so too)."""
    session = config.pluginmanager.get_plugin(SESSION_NAME)
    if isinstance(session, ConformanceSession):
        session.usage_error = message
    pytest.exit(f"ketch conformance: {message}", returncode=pytest.ExitCode.USAGE_ERROR)


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
    if _COMMAND_LINE_TARGET not in config.stash:
        inputs, labels = config.stash[_COMMAND_LINE_ROWS]
        config.stash[_COMMAND_LINE_TARGET] = ConformanceTarget(
            plugin=plugin,
            model_path=model,
            device=config.getoption("ketch_device"),
            options=_options(config.getoption("ketch_option")),
            sample_inputs=inputs,
            sample_labels=labels,
        )
    return config.stash[_COMMAND_LINE_TARGET]


def _from_command_line(config: pytest.Config, target: ConformanceTarget) -> bool:
    return config.stash.get(_COMMAND_LINE_TARGET, None) is target


def _with_call_timeout(config: pytest.Config, target: ConformanceTarget) -> ConformanceTarget:
    """The target with the command line's ``--ketch-call-timeout``, when one was given."""
    seconds = config.getoption("ketch_call_timeout")
    return target if seconds is None else dataclasses.replace(target, call_timeout=seconds)


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
def ketch_in_process(
    request: pytest.FixtureRequest, ketch_target: ConformanceTarget
) -> Iterator[InProcessSubject]:
    """The target's model, loaded through its hooks in a worker process of its own."""
    subject = IsolatedSubject.start(_with_call_timeout(request.config, ketch_target))
    yield subject
    subject.close()


def _random_rows_refused(subject: InProcessSubject, inputs: Mapping[str, np.ndarray]) -> str:
    """Why the model refuses random rows as invalid input, or "" when it does not."""
    try:
        subject.framework.batch_predict(subject.model, read_only(inputs))
    except InvalidInputError as error:
        return str(error)
    except Exception:
        return ""  # a crash, or another error: the checks report it
    return ""


@pytest.fixture(scope="module")
def ketch_sample_inputs(
    request: pytest.FixtureRequest,
    ketch_target: ConformanceTarget,
    ketch_in_process: InProcessSubject,
) -> dict[str, np.ndarray]:
    """The rows the checks predict (at most ``max_batch``): the target's, the plugin's, or random.

    The target's own rows must fit the signature (and its labels, if any, the rows):
    if they come from the command line, a misfit stops the run as a usage error.
    """
    config = request.config
    command_line = _from_command_line(config, ketch_target)
    origin = (
        f"the inputs file {config.getoption('ketch_inputs')}"
        if command_line
        else "the target's sample_inputs"
    )
    try:
        inputs, source = choose_sample_inputs(ketch_target.sample_inputs, ketch_in_process, origin)
        rows = len(next(iter(inputs.values())))
        labels_origin = (
            f"the labels file {config.getoption('ketch_labels')}"
            if command_line
            else "the target's sample_labels"
        )
        check_labels(ketch_target.sample_labels, rows, labels_origin)
        refused = _random_rows_refused(ketch_in_process, inputs) if source == RANDOM else ""
        if refused:
            raise SampleInputsError(
                f"the model refuses the {RANDOM} as invalid input ({refused}): {NO_VALID_SAMPLE}"
            )
    except SampleInputsError as error:
        if command_line:
            _usage_error(config, str(error))
        raise
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


def _start_wrapper(target: ConformanceTarget) -> WrapperProcess:
    return start_wrapper(
        target.plugin,
        target.model_path,
        device=target.device,
        options=target.options,
        env=target.env,
    )


@pytest.fixture(scope="module")
def ketch_wrapper(ketch_target: ConformanceTarget) -> Iterator[WrapperProcess]:
    """A ``ketch serve`` process for the target, stopped after the module."""
    process = _start_wrapper(ketch_target)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def ketch_grpc(
    request: pytest.FixtureRequest,
    ketch_target: ConformanceTarget,
    ketch_wrapper: WrapperProcess,
    ketch_in_process: InProcessSubject,
) -> Iterator[GrpcSubject]:
    """A client for the target's wrapper process, which starts a fresh one after a fault."""
    target = _with_call_timeout(request.config, ketch_target)
    subject = GrpcSubject(
        ketch_wrapper,
        ketch_in_process.signature,
        call_timeout=target.call_timeout,
        restart=lambda: _start_wrapper(target),
    )
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
