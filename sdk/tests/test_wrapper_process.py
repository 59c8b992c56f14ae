"""``ketch serve`` as a real process on 127.0.0.1: protocol, errors, readiness, shutdown."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from sdk_test_plugins import REFERENCE_PLUGIN, SLOW_PLUGIN

from ketch import (
    WrapperCallError,
    WrapperClient,
    WrapperProcess,
    WrapperStartError,
    start_wrapper,
)
from ketch.process import LISTENING_PREFIX, READY_PREFIX, serve_command
from ketch.proto import grpc_service_pb2 as pb
from ketch.wire import infer_request
from ketch_conformance.reference import SoftmaxModel


@pytest.fixture(scope="module")
def wrapper(softmax_path: Path) -> Iterator[WrapperProcess]:
    with start_wrapper(
        REFERENCE_PLUGIN, softmax_path, name="digits", version="3", max_batch=64
    ) as process:
        yield process


@pytest.fixture
def client(wrapper: WrapperProcess) -> Iterator[WrapperClient]:
    with WrapperClient(wrapper.address, model="digits") as client:
        yield client


def reference_outputs(path: Path, rows: np.ndarray) -> dict[str, np.ndarray]:
    with np.load(path) as archive:
        model = SoftmaxModel(archive["weights"], archive["bias"])
    return model.predict(rows)


def test_ready_line_reports_the_bound_address(wrapper: WrapperProcess) -> None:
    host, port = wrapper.address.rsplit(":", 1)
    assert host == "127.0.0.1"
    assert int(port) > 0
    assert (wrapper.ready.model, wrapper.ready.version) == ("digits", "3")
    assert wrapper.ready.pid == wrapper.pid


def test_health_readiness_and_metadata(client: WrapperClient) -> None:
    assert client.live()
    assert client.ready()
    assert client.model_ready()
    assert client.model_ready("digits", "3")
    assert client.health() == "SERVING"
    assert client.health("inference.GRPCInferenceService") == "SERVING"
    server = client.server_metadata()
    assert server.name == "ketch"
    assert "ketch_observe" in server.extensions
    metadata = client.model_metadata()
    assert metadata.name == "digits"
    assert metadata.versions == ("3",)
    assert metadata.platform == "numpy-softmax"
    assert [(t.name, t.datatype, t.shape) for t in metadata.inputs] == [("input", "FP32", (-1, 64))]
    assert [t.name for t in metadata.outputs] == ["probabilities", "label"]
    capabilities = client.capabilities()
    assert capabilities.devices == ("cpu",)
    assert capabilities.observe
    assert capabilities.max_batch == 64
    assert (capabilities.tolerance.rtol, capabilities.tolerance.atol) == (1e-5, 1e-6)


def test_infer_matches_the_model_in_process(
    client: WrapperClient, softmax_path: Path, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    rows = digits[0][1000:1050]
    outputs = client.infer({"input": rows}, request_id="q-1")
    expected = reference_outputs(softmax_path, rows)
    np.testing.assert_array_equal(outputs["label"], expected["label"])
    np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"], rtol=1e-6)
    assert client.infer({"input": rows}, outputs=["label"]).keys() == {"label"}


def test_response_carries_request_id_and_model(
    wrapper: WrapperProcess, client: WrapperClient
) -> None:
    request = infer_request(
        {"input": np.zeros((1, 64), np.float32)}, model="digits", request_id="abc"
    )
    response = client.send_infer(request)
    assert (response.id, response.model_name, response.model_version) == ("abc", "digits", "3")
    assert [o.datatype for o in response.outputs] == ["FP32", "INT64"]


def test_typed_contents_are_accepted(client: WrapperClient) -> None:
    rows = np.arange(128, dtype=np.float32).reshape(2, 64) / 128
    tensor = pb.ModelInferRequest.InferInputTensor(name="input", datatype="FP32", shape=[2, 64])
    tensor.contents.fp32_contents.extend(rows.ravel().tolist())
    response = client.send_infer(pb.ModelInferRequest(model_name="digits", inputs=[tensor]))
    raw = client.infer({"input": rows})
    assert np.frombuffer(response.raw_output_contents[1], "<i8").tolist() == raw["label"].tolist()


def expect_error(code: str, message: str, call: Callable[[], object]) -> None:
    with pytest.raises(WrapperCallError) as caught:
        call()
    assert caught.value.code == code, caught.value
    assert message in caught.value.message, caught.value.message


def test_bad_requests_get_clear_errors_and_the_process_survives(
    wrapper: WrapperProcess, client: WrapperClient
) -> None:
    good = np.zeros((2, 64), np.float32)
    expect_error(
        "INVALID_ARGUMENT",
        "expected datatype FP32, got FP64",
        lambda: client.infer({"input": good.astype(np.float64)}),
    )
    expect_error(
        "INVALID_ARGUMENT",
        "expected shape [-1, 64], got [2, 63]",
        lambda: client.infer({"input": good[:, :63]}),
    )
    expect_error(
        "INVALID_ARGUMENT", "unknown 'other'", lambda: client.infer({"input": good, "other": good})
    )
    expect_error("INVALID_ARGUMENT", "missing 'input'", lambda: client.infer({"pixels": good}))
    expect_error(
        "INVALID_ARGUMENT",
        "exceeds model 'digits'",
        lambda: client.infer({"input": np.zeros((65, 64), np.float32)}),
    )
    expect_error(
        "INVALID_ARGUMENT",
        "unknown output(s) 'nope'",
        lambda: client.infer({"input": good}, outputs=["nope"]),
    )
    expect_error(
        "NOT_FOUND", "unknown model 'other'", lambda: client.infer({"input": good}, model="other")
    )
    expect_error("NOT_FOUND", "version '9'", lambda: client.infer({"input": good}, version="9"))
    short = infer_request({"input": good}, model="digits")
    short.raw_input_contents[0] = short.raw_input_contents[0][:-4]
    expect_error(
        "INVALID_ARGUMENT",
        "508 bytes of raw contents do not match shape [2, 64]",
        lambda: client.send_infer(short),
    )
    twice = infer_request({"input": good}, model="digits")
    twice.raw_input_contents.append(b"")
    expect_error(
        "INVALID_ARGUMENT", "2 raw contents for 1 tensors", lambda: client.send_infer(twice)
    )
    expect_error(
        "INVALID_ARGUMENT",
        "labels: 1 rows for 2 input rows",
        lambda: client.observe({"input": good}, np.zeros(1, np.int64)),
    )
    assert wrapper.alive()
    assert client.infer({"input": good})["label"].shape == (2,)


def test_empty_batch(client: WrapperClient) -> None:
    outputs = client.infer({"input": np.zeros((0, 64), np.float32)})
    assert outputs["probabilities"].shape == (0, 10)
    assert outputs["label"].shape == (0,)


def test_thirty_two_concurrent_clients(
    wrapper: WrapperProcess, digits: tuple[np.ndarray, np.ndarray], softmax_path: Path
) -> None:
    rows = digits[0][:320]
    expected = reference_outputs(softmax_path, rows)["label"]
    answers: dict[int, np.ndarray] = {}

    def ask(index: int) -> None:
        with WrapperClient(wrapper.address, model="digits") as own:
            for _ in range(3):
                answers[index] = own.infer({"input": rows[index * 10 : index * 10 + 10]})["label"]

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    np.testing.assert_array_equal(np.concatenate([answers[i] for i in range(32)]), expected)


def test_observe_moves_predictions_towards_the_labels(softmax_path: Path) -> None:
    rows = np.zeros((4, 64), np.float32)
    rows[:, :8] = 1.0
    labels = np.full(4, 7, np.int64)
    with (
        start_wrapper(REFERENCE_PLUGIN, softmax_path, options={"learning_rate": "1.0"}) as process,
        WrapperClient(process.address) as own,
    ):
        before = own.infer({"input": rows})["probabilities"][:, 7]
        result = own.observe({"input": rows}, labels)
        assert (result.changed, result.rows) == (True, 4)
        after = own.infer({"input": rows})["probabilities"][:, 7]
        assert (after > before).all()
        expect_error(
            "INVALID_ARGUMENT",
            "class indices must be in [0, 10)",
            lambda: own.observe({"input": rows}, np.full(4, 12, np.int64)),
        )


def test_observe_on_a_model_that_does_not_learn(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    import skops.io
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    rows, labels = load_iris(return_X_y=True)
    path = tmp_path / "iris.skops"
    skops.io.dump(LogisticRegression(max_iter=500).fit(rows, labels), path)
    with start_wrapper("sklearn", path) as process, WrapperClient(process.address) as own:
        expect_error(
            "INVALID_ARGUMENT",
            "does not learn online",
            lambda: own.observe({"input": rows[:2]}, labels[:2]),
        )


def test_sigterm_finishes_calls_in_flight_and_exits_zero(
    softmax_path: Path, test_plugins_env: dict[str, str], tmp_path: Path
) -> None:
    marker = tmp_path / "called"
    unloaded = tmp_path / "unloaded"
    process = start_wrapper(
        SLOW_PLUGIN,
        softmax_path,
        options={"predict_delay": "1.5", "marker": str(marker), "unloaded": str(unloaded)},
        env=test_plugins_env,
    )
    result: dict[str, object] = {}

    def slow_call() -> None:
        with WrapperClient(process.address) as own:
            try:
                result["outputs"] = own.infer({"input": np.zeros((3, 64), np.float32)})
            except WrapperCallError as error:
                result["error"] = error

    caller = threading.Thread(target=slow_call)
    caller.start()
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert marker.exists(), "the slow call never reached the plugin"
    process.terminate()
    time.sleep(0.3)
    with (
        WrapperClient(process.address, timeout=5) as late,
        pytest.raises(WrapperCallError) as refused,
    ):
        late.infer({"input": np.zeros((1, 64), np.float32)})
    assert refused.value.code in {"UNAVAILABLE", "CANCELLED"}
    assert not unloaded.exists(), "the model was unloaded while a call was in flight"
    caller.join(timeout=30)
    assert process.stop(timeout=30) == 0
    assert unloaded.exists(), "ketch_unload was not called on SIGTERM"
    assert "error" not in result, result.get("error")
    outputs = result["outputs"]
    assert isinstance(outputs, dict)
    assert outputs["label"].shape == (3,)


def read_prefixed_line(process: subprocess.Popen[str], prefix: str) -> dict[str, object]:
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith(prefix):
            fields = json.loads(line[len(prefix) :])
            assert isinstance(fields, dict)
            return fields
    raise AssertionError(f"no {prefix.strip()} line")


def test_sigterm_that_another_thread_receives_still_stops_the_wrapper(softmax_path: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "tgkill") or not Path("/proc/self/task").is_dir():
        pytest.skip("sending a signal to one thread needs Linux's tgkill")
    with start_wrapper(REFERENCE_PLUGIN, softmax_path, echo_stderr=False) as process:
        others = [int(task) for task in os.listdir(f"/proc/{process.pid}/task")]
        others.remove(process.pid)
        assert libc.tgkill(process.pid, others[-1], signal.SIGTERM) == 0
        assert process.process.wait(timeout=30) == 0


def test_liveness_answers_while_the_model_loads(
    softmax_path: Path, test_plugins_env: dict[str, str]
) -> None:
    command = serve_command(SLOW_PLUGIN, softmax_path, port=0, options={"load_delay": "2"})
    env = {**os.environ, **test_plugins_env}
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:
        try:
            address = str(read_prefixed_line(process, LISTENING_PREFIX)["address"])
            with WrapperClient(address) as own:
                assert own.live()
                assert not own.ready()
                assert own.health() == "NOT_SERVING"
                expect_error(
                    "UNAVAILABLE",
                    "still loading",
                    lambda: own.infer({"input": np.zeros((1, 64), np.float32)}),
                )
                read_prefixed_line(process, READY_PREFIX)
                assert own.ready()
                assert own.health() == "SERVING"
        finally:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_sigterm_during_load_exits_zero(
    softmax_path: Path, test_plugins_env: dict[str, str]
) -> None:
    command = serve_command(SLOW_PLUGIN, softmax_path, options={"load_delay": "30"})
    env = {**os.environ, **test_plugins_env}
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:
        read_prefixed_line(process, LISTENING_PREFIX)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_unknown_plugin_exits_2_listing_installed(softmax_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ketch", "serve", "nosuch", str(softmax_path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "no Ketch plugin named 'nosuch' is installed" in result.stderr
    assert "sklearn" in result.stderr


def test_missing_model_file_is_a_clear_start_failure(tmp_path: Path) -> None:
    with pytest.raises(
        WrapperStartError, match=r"exited with status 1(?s:.*)no file or directory at"
    ):
        start_wrapper(REFERENCE_PLUGIN, tmp_path / "absent.npz", echo_stderr=False)


def test_impossible_device_is_a_clear_start_failure(softmax_path: Path) -> None:
    with pytest.raises(
        WrapperStartError, match=r"device 'cuda:3' is not available.*available: cpu"
    ):
        start_wrapper(REFERENCE_PLUGIN, softmax_path, device="cuda:3", echo_stderr=False)


def test_busy_port_is_a_clear_error(wrapper: WrapperProcess, softmax_path: Path) -> None:
    port = wrapper.address.rsplit(":", 1)[1]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ketch",
            "serve",
            REFERENCE_PLUGIN,
            str(softmax_path),
            "--port",
            port,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_bad_command_line_options_are_usage_errors(softmax_path: Path) -> None:
    for args in (["--port", "70000"], ["--max-batch", "0"], ["--option", "novalue"]):
        result = subprocess.run(
            [sys.executable, "-m", "ketch", "serve", REFERENCE_PLUGIN, str(softmax_path), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, args
        assert "error: argument" in result.stderr
