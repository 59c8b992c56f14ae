"""A run whose call ends is terminated half-way (onnxruntime's ``RunOptions.terminate``)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from ketch import CallCancelled, CallScope, ModelRuntime, ModelSpec, select_framework, serving_call

TURNS = 10_000_000
"""Loop turns: about 20 seconds of work on a 2-core machine, were the run not stopped."""
WAIT_S = 60.0


def slow_graph(path: Path) -> Path:
    """``y = x`` after as many turns of a loop (multiplying by one) as input ``turns`` says.

    The turns come from the input, so that loading (which probes the graph with
    zeros) is quick.
    """
    body = helper.make_graph(
        [
            helper.make_node("Mul", ["y_in", "factor"], ["y_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("y_in", TensorProto.FLOAT, ["n", 4]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("y_out", TensorProto.FLOAT, ["n", 4]),
        ],
        [helper.make_tensor("factor", TensorProto.FLOAT, [], [1.0])],
    )
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMax", ["turns"], ["trips"], keepdims=0),
            helper.make_node("Loop", ["trips", "keep_going", "x"], ["y"], body=body),
        ],
        "slow",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4]),
            helper.make_tensor_value_info("turns", TensorProto.INT64, ["n", 1]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor("keep_going", TensorProto.BOOL, [], [True])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def batch(rows: int, turns: int) -> dict[str, np.ndarray]:
    return {
        "x": np.arange(rows * 4, dtype=np.float32).reshape(rows, 4),
        "turns": np.full((rows, 1), turns, np.int64),
    }


class WatchedScope(CallScope):
    """A call scope that says when the plugin registers how to stop (its run is starting)."""

    def __init__(self) -> None:
        super().__init__()
        self.registered = threading.Event()

    def on_cancel(self, callback: object) -> None:
        super().on_cancel(callback)  # type: ignore[arg-type]
        self.registered.set()


def runtime_for(path: Path) -> ModelRuntime:
    return ModelRuntime.load(select_framework("onnx"), ModelSpec.from_path(path))


def test_a_run_finishes_when_its_call_does_not_end(tmp_path: Path) -> None:
    runtime = runtime_for(slow_graph(tmp_path / "slow.onnx"))
    rows = batch(2, 3)
    with serving_call(CallScope.from_time_remaining(WAIT_S)):
        assert np.array_equal(runtime.predict(rows)["y"], rows["x"])


def test_cancelling_the_call_terminates_the_run(tmp_path: Path) -> None:
    runtime = runtime_for(slow_graph(tmp_path / "slow.onnx"))
    scope = WatchedScope()
    outcome: list[BaseException | None] = []

    def serve() -> None:
        try:
            with serving_call(scope):
                runtime.predict(batch(1, TURNS))
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    worker = threading.Thread(target=serve)
    worker.start()
    assert scope.registered.wait(WAIT_S)
    scope.cancel("the caller went away")
    worker.join(WAIT_S)
    assert not worker.is_alive(), "the run went on after its call was cancelled"
    (error,) = outcome
    assert isinstance(error, CallCancelled), error
    assert "the ONNX run was terminated: the caller went away" in str(error)
    assert not error.expired


def test_a_call_already_over_is_not_run(tmp_path: Path) -> None:
    runtime = runtime_for(slow_graph(tmp_path / "slow.onnx"))
    over = CallScope.from_time_remaining(-1.0)
    with serving_call(over), pytest.raises(CallCancelled, match="deadline had passed"):
        runtime.predict(batch(1, TURNS))
