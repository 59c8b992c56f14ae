"""The worker process runs the hooks as the suite's own process would, and errors come back whole.

Calls from the suite's main thread run on the worker's main thread (a plugin may
install a signal handler, or keep thread-local settings), calls made at once run at
once, and the rules about shared arrays are judged on the arrays the plugin saw.
Errors the plugin raises come back as their own types where the suite knows them,
and as stand-ins with the same name, base and message where it does not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conformance_test_support import grpc_context, isolated_context

from ketch import DeviceUnavailableError, InvalidInputError
from ketch_conformance import CHECKS, ConformanceFailure, ConformanceTarget
from ketch_conformance.isolation import IsolatedSubject
from ketch_conformance.isolation.protocol import RaisedInWorker, decode_error, encode_error


class FrameworkError(InvalidInputError):
    """An error of a framework the suite does not import, deriving from a Ketch error."""


def _round_trip(error: BaseException) -> BaseException:
    raised = encode_error(error)
    foreign = raised.classes[0]
    raised = type(raised)(
        ((f"not_imported_{foreign[0]}", foreign[1]), *raised.classes[1:]),
        raised.message,
        None,
        raised.attributes,
        raised.traceback,
    )
    return decode_error(raised)


def test_errors_the_suite_knows_come_back_as_themselves() -> None:
    device = decode_error(encode_error(DeviceUnavailableError("cuda:9", ("cpu",), "no GPU")))
    assert type(device) is DeviceUnavailableError
    assert str(device) == "device 'cuda:9' is not available: no GPU (available: cpu)"
    assert device.device == "cuda:9"
    unicode = decode_error(encode_error(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid")))
    assert type(unicode) is UnicodeDecodeError
    assert "can't decode byte 0xff" in str(unicode)
    assert any("raised in the worker process" in note for note in unicode.__notes__)


def test_errors_it_does_not_know_come_back_as_stand_ins_with_their_name_and_base() -> None:
    error = _round_trip(FrameworkError("input 'x': no such token"))
    assert isinstance(error, RaisedInWorker)
    assert isinstance(error, InvalidInputError)
    assert (type(error).__name__, str(error)) == ("FrameworkError", "input 'x': no such token")


def test_an_exit_or_interrupt_in_the_plugin_cannot_end_the_run() -> None:
    for error in (SystemExit(3), KeyboardInterrupt()):
        rebuilt = decode_error(encode_error(error))
        assert isinstance(rebuilt, Exception)
        assert type(rebuilt).__name__ == type(error).__name__


@pytest.fixture(scope="module")
def sample(digit_rows: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return digit_rows[0][1000:1012]


@pytest.mark.parametrize(
    ("plugin", "check", "message"),
    [
        (
            "not_thread_safe",
            "concurrent_clients",
            r"32 clients at once \(in process\): client \d+, call \d got another answer",
        ),
        ("writes_inputs", "inputs_not_modified", "changed its input 'input' in place"),
        (
            "reuses_outputs",
            "outputs_not_reused",
            "output 'probabilities' of one call changed when the next call ran",
        ),
    ],
)
def test_the_worker_keeps_what_the_in_process_rules_are_about(
    plugin: str, check: str, message: str, reference_model: Path, sample: np.ndarray
) -> None:
    with (
        isolated_context(f"broken_plugins:{plugin}", reference_model, {"input": sample}) as context,
        pytest.raises(ConformanceFailure, match=message),
    ):
        CHECKS[check].run(context)


def test_the_worker_calls_from_its_main_thread_as_the_suite_would(
    reference_model: Path, sample: np.ndarray
) -> None:
    """Thread-local settings made at load apply in process; over gRPC they do not."""
    reference = "broken_plugins:thread_local_settings"
    target = ConformanceTarget(reference, reference_model, sample_inputs={"input": sample})
    isolated = IsolatedSubject.start(target)
    try:
        with grpc_context(reference, reference_model, {"input": sample}) as context:
            wired = type(context)(
                context.subject, context.inputs, context.tolerance, context.target, isolated
            )
            with pytest.raises(ConformanceFailure, match="differ from ketch_batch_predict's"):
                CHECKS["wire_matches_hooks"].run(wired)
    finally:
        isolated.close()


def test_a_plugin_may_install_a_signal_handler_as_it_loads(reference_model: Path) -> None:
    target = ConformanceTarget(
        "conformance_lifecycle_plugins:drops_calls_on_sigterm",
        reference_model,
        options={"own_sigterm_handler": "yes"},
    )
    subject = IsolatedSubject.start(target)
    try:
        assert subject.signature.inputs[0].name == "input"
    finally:
        subject.close()
