"""Deadlines and cancellation in ``ketch serve``: a call that is over never reaches the plugin.

The gRPC call's deadline and cancellation become a :class:`ketch.CallScope`; the
runtime does not call the plugin once it is over, and a plugin that can stop
mid-way (here the pacing plugin, standing for a framework that can) stops.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from sdk_test_plugins import REFERENCE_PLUGIN, SLOW_PLUGIN, CountingWrapper, stalled_wrapper

from ketch import (
    CallCancelled,
    CallScope,
    ModelRuntime,
    ModelSpec,
    WrapperCallError,
    WrapperClient,
    WrapperProcess,
    current_call,
    select_framework,
    serving_call,
    start_wrapper,
)
from ketch.proto import grpc_service_pb2 as pb
from ketch.wire import infer_request

ROW = {"input": np.zeros((1, 64), np.float32)}
WAIT_S = 30.0
"""How long a test waits for something that must happen (it happens in milliseconds)."""


def files_in(folder: Path) -> list[Path]:
    return sorted(folder.glob("call-*"))


def wait_for_files(folder: Path, count: int) -> None:
    until = time.monotonic() + WAIT_S
    while len(files_in(folder)) < count and time.monotonic() < until:
        time.sleep(0.01)
    assert len(files_in(folder)) >= count, f"expected {count} calls in {folder}"


# --- the scope itself -------------------------------------------------------------------------


def test_outside_a_served_call_the_scope_never_ends() -> None:
    scope = current_call()
    assert scope.deadline is None
    assert scope.time_left() is None
    assert not scope.cancelled()
    scope.check()
    assert current_call() is not scope, "each caller outside a call gets a scope of its own"


def test_a_scope_ends_at_its_deadline() -> None:
    scope = CallScope(time.monotonic() - 0.001)
    assert scope.expired()
    assert scope.cancelled()
    assert scope.wait(60.0), "waiting past the deadline returns at once"
    with pytest.raises(CallCancelled, match="deadline had passed") as skipped:
        scope.check("the batch")
    assert skipped.value.expired


def test_cancelling_wakes_a_wait_and_runs_each_callback_once() -> None:
    scope = CallScope.from_time_remaining(60.0)
    assert 59.0 < (scope.time_left() or 0.0) <= 60.0
    stopped: list[str] = []
    scope.on_cancel(lambda: stopped.append("first"))
    waiter_saw: list[bool] = []
    waiter = threading.Thread(target=lambda: waiter_saw.append(scope.wait(60.0)))
    waiter.start()
    scope.cancel("the caller went away")
    waiter.join(WAIT_S)
    scope.cancel("again")
    scope.on_cancel(lambda: stopped.append("late"))
    assert waiter_saw == [True]
    assert stopped == ["first", "late"], "a callback registered after the end runs at once"
    with pytest.raises(CallCancelled, match="the caller went away") as skipped:
        scope.check()
    assert not skipped.value.expired


def test_a_finished_call_ignores_the_transport_closing_it() -> None:
    scope = CallScope.from_time_remaining(None)
    ran: list[str] = []
    with serving_call(scope):
        assert current_call() is scope
        scope.on_cancel(lambda: ran.append("stop"))
    scope.cancel()
    assert ran == []
    assert not scope.cancelled()
    assert CallScope.from_time_remaining(1e9).deadline is None, "gRPC's 'no deadline'"


def test_the_runtime_does_not_call_the_plugin_for_a_call_that_is_over(
    softmax_path: Path,
) -> None:
    counting = CountingWrapper()
    framework = select_framework(REFERENCE_PLUGIN, cross_cutting=[counting], environ={})
    runtime = ModelRuntime.load(framework, ModelSpec.from_path(softmax_path, name="digits"))
    with serving_call(CallScope.from_time_remaining(60.0)):
        assert runtime.predict(ROW)["label"].shape == (1,)
    over = CallScope.from_time_remaining(60.0)
    over.cancel()
    with serving_call(over), pytest.raises(CallCancelled, match="a batch of 1 rows was skipped"):
        runtime.predict(ROW)
    assert counting.calls == 1


# --- ketch serve ------------------------------------------------------------------------------


@pytest.fixture
def held_wrapper(
    softmax_path: Path, test_plugins_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[WrapperProcess, Path, Path]]:
    """One worker thread, a plugin that leaves a file per call and waits while ``hold`` exists."""
    calls, hold = tmp_path / "calls", tmp_path / "hold"
    calls.mkdir()
    with start_wrapper(
        SLOW_PLUGIN,
        softmax_path,
        name="digits",
        options={"calls": str(calls), "hold": str(hold)},
        extra_args=["--workers", "1"],
        env=test_plugins_env,
        echo_stderr=False,
    ) as process:
        yield process, calls, hold


def test_a_batch_whose_deadline_passed_while_it_waited_never_reaches_the_plugin(
    held_wrapper: tuple[WrapperProcess, Path, Path],
) -> None:
    process, calls, hold = held_wrapper
    hold.touch()
    outcome: dict[str, object] = {}

    def first_call() -> None:
        with WrapperClient(process.address, timeout=WAIT_S * 2) as client:
            outcome["first"] = client.infer(ROW)

    first = threading.Thread(target=first_call)
    first.start()
    wait_for_files(calls, 1)  # the only worker thread is busy with the first call
    with WrapperClient(process.address, timeout=0.2) as client:
        with pytest.raises(WrapperCallError) as late:
            client.infer(ROW)
        assert late.value.code == "DEADLINE_EXCEEDED"
    hold.unlink()  # the first call finishes; the second's deadline is long gone
    first.join(WAIT_S)
    assert "first" in outcome
    with WrapperClient(process.address, timeout=WAIT_S) as client:
        assert client.infer(ROW)["label"].shape == (1,)
    assert len(files_in(calls)) == 2, "the expired call reached the plugin"


@pytest.fixture
def paced_wrapper(
    softmax_path: Path, test_plugins_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[WrapperProcess, Path, Path]]:
    """A minute's pacing per prediction in one worker thread (see ``stalled_wrapper``)."""
    with stalled_wrapper(softmax_path, tmp_path, test_plugins_env) as wrapper:
        yield wrapper


@pytest.mark.parametrize("ending", ["cancelled", "deadline"])
def test_a_call_that_ends_stops_the_paced_prediction(
    paced_wrapper: tuple[WrapperProcess, Path, Path], ending: str
) -> None:
    process, calls, control = paced_wrapper
    request = infer_request(ROW, model="digits")
    with grpc.insecure_channel(process.address) as channel:
        infer = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        call = infer.future(request, timeout=WAIT_S * 4 if ending == "cancelled" else 0.5)
        wait_for_files(control, 1)  # the call is in the pacing's minute-long wait
        if ending == "cancelled":
            assert call.cancel()  # type: ignore[no-untyped-call]
        else:
            with pytest.raises(grpc.RpcError) as ended:
                call.result()
            assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # the only worker thread is free again: the next call reaches the pacing
        following = infer.future(request, timeout=0.5)
        wait_for_files(control, 2)
        with pytest.raises(grpc.RpcError):
            following.result()
    assert files_in(calls) == [], "a prediction was made for a call nobody waited for"
