"""Online learning through real ``ketch serve`` processes: Observe, restarts, concurrency."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from vw_test_models import TrainedModel, load, texts_of

from ketch import (
    Framework,
    LabelSpec,
    WrapperCallError,
    WrapperClient,
    WrapperProcess,
    start_wrapper,
)


def client_for(process: WrapperProcess) -> WrapperClient:
    return WrapperClient(process.address, model=process.ready.model)


@pytest.fixture(scope="module")
def digits_model(
    vw_models: dict[str, TrainedModel], tmp_path_factory: pytest.TempPathFactory
) -> TrainedModel:
    return vw_models["digits"].copy_to(tmp_path_factory.mktemp("grpc-digits"))


@pytest.fixture(scope="module")
def digits_wrapper(digits_model: TrainedModel) -> Iterator[WrapperProcess]:
    options = {"input": "dense", "n_features": "64"}
    with start_wrapper("vw", digits_model.path, options=options) as process:
        yield process


def test_the_wrapper_announces_online_learning(digits_wrapper: WrapperProcess) -> None:
    with client_for(digits_wrapper) as client:
        assert "ketch_observe" in client.server_metadata().extensions
        assert client.model_metadata().platform == "vowpalwabbit"


def test_capabilities_say_it_persists_and_which_labels_it_takes(
    digits_wrapper: WrapperProcess, vw_models: dict[str, TrainedModel]
) -> None:
    with client_for(digits_wrapper) as client:
        capabilities = client.capabilities()
    assert capabilities.observe
    assert capabilities.persists_observations
    assert capabilities.labels == LabelSpec("classes", tuple(range(1, 11)))
    read_only = {"input": "dense", "n_features": "64", "learn": "false"}
    with (
        start_wrapper("vw", vw_models["digits"].path, options=read_only) as process,
        client_for(process) as client,
    ):
        capabilities = client.capabilities()
    assert not capabilities.observe
    assert not capabilities.persists_observations
    assert capabilities.labels is None


def test_observe_over_grpc_matches_observe_in_process(
    digits_wrapper: WrapperProcess, digits_model: TrainedModel, framework: Framework
) -> None:
    in_process = load(framework, digits_model.path, input="dense", n_features="64", learn="false")
    reference = digits_model.reference()
    data = digits_model.test
    rows, probe = data.rows[:100], {"input": data.rows[100:150]}
    with client_for(digits_wrapper) as client:
        before = client.infer(probe)["probabilities"]
        np.testing.assert_array_equal(before, in_process.predict(probe)["probabilities"])
        result = client.observe({"input": rows}, data.labels[:100])
        assert (result.changed, result.rows) == (True, 100)
        after = client.infer(probe)["probabilities"]
    for text, label in zip(data.texts[:100].tolist(), data.labels[:100].tolist(), strict=True):
        reference.learn(f"{label} {text.decode()}")
    expected = [reference.predict(text.decode()) for text in data.texts[100:150].tolist()]
    np.testing.assert_array_equal(after, np.asarray(expected, np.float32))
    assert not np.array_equal(after, before)


def test_bad_labels_over_grpc(digits_wrapper: WrapperProcess, digits_model: TrainedModel) -> None:
    rows = digits_model.test.rows[:2]
    with client_for(digits_wrapper) as client:
        with pytest.raises(
            WrapperCallError,
            match=r"INVALID_ARGUMENT: labels: row 0 has the label 0, .*classes 1 to 10",
        ):
            client.observe({"input": rows}, np.array([0, 4]))
        with pytest.raises(WrapperCallError, match=r"INVALID_ARGUMENT: labels: 3 rows for 2"):
            client.observe({"input": rows}, np.array([1, 2, 3]))
        assert client.infer({"input": rows})["label"].shape == (2,)


def test_bandit_learns_over_grpc(model_copy: Callable[[str], TrainedModel]) -> None:
    model = model_copy("bandit")
    row = texts_of(["shared |s user=u0\n|a item=i0\n|a item=i1\n|a item=i2"])
    labels = np.array([[0, 1.0, 1 / 3], [1, 1.0, 1 / 3], [2, 0.0, 1 / 3]])
    batch = np.concatenate([row] * 3)
    with (
        start_wrapper("vw", model.path, options={"actions": "3"}) as process,
        client_for(process) as client,
    ):
        assert client.infer({"input": row})["probabilities"].argmax() == 0
        for _ in range(60):
            client.observe({"input": batch}, labels)
        assert client.infer({"input": row})["probabilities"].argmax() == 2


def test_learned_state_survives_sigterm_and_restart(
    model_copy: Callable[[str], TrainedModel],
) -> None:
    model = model_copy("regression")
    probe = {"input": model.test.texts}
    with start_wrapper("vw", model.path) as first, client_for(first) as client:
        original = client.infer(probe)["prediction"]
        client.observe(probe, model.test.labels + 5.0)
        learnt = client.infer(probe)["prediction"]
        assert first.stop() == 0
    assert not np.array_equal(learnt, original)
    with start_wrapper("vw", model.path) as second, client_for(second) as client:
        np.testing.assert_array_equal(client.infer(probe)["prediction"], learnt)
        client.observe(probe, model.test.labels + 5.0)
        assert not np.array_equal(client.infer(probe)["prediction"], learnt)


def test_periodic_saves_survive_a_crash(model_copy: Callable[[str], TrainedModel]) -> None:
    """Killed without warning, a wrapper loses only the updates since its last save."""
    model = model_copy("regression")
    data = model.test
    probe = {"input": data.texts}
    options = {"save_every_updates": "10"}
    with start_wrapper("vw", model.path, options=options) as first, client_for(first) as client:
        client.observe({"input": data.texts[:10]}, data.labels[:10] + 5.0)
        saved = client.infer(probe)["prediction"]
        client.observe({"input": data.texts[10:13]}, data.labels[10:13] + 5.0)
        assert not np.array_equal(client.infer(probe)["prediction"], saved)
        os.kill(first.pid, signal.SIGKILL)
        assert first.stop() == -signal.SIGKILL
    assert [p.name for p in model.path.parent.iterdir() if p.name.endswith(".tmp")] == []
    with start_wrapper("vw", model.path) as second, client_for(second) as client:
        np.testing.assert_array_equal(client.infer(probe)["prediction"], saved)


def test_concurrent_observe_and_infer_over_grpc(
    model_copy: Callable[[str], TrainedModel],
) -> None:
    """Clients teach one row from several threads while others predict.

    The same labelled row learnt N times gives the same model in any order, so the
    wrapper must end exactly where N sequential updates in process end.
    """
    model = model_copy("regression")
    reference = model.reference()
    row, label = {"input": model.test.texts[:1]}, np.array([20.0])
    probe = {"input": model.test.texts}
    threads, calls = 4, 25
    failures: list[BaseException] = []

    def run(work: Callable[[WrapperClient], Any], process: WrapperProcess) -> None:
        try:
            with client_for(process) as client:
                for _ in range(calls):
                    work(client)
        except BaseException as error:
            failures.append(error)

    with start_wrapper("vw", model.path, options={"learn": "true"}) as process:
        workers = [
            threading.Thread(target=run, args=(lambda c: c.observe(row, label), process))
            for _ in range(threads)
        ]
        workers += [
            threading.Thread(target=run, args=(lambda c: c.infer(probe), process)) for _ in range(2)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        with client_for(process) as client:
            served = client.infer(probe)["prediction"]
    assert failures == []
    text = f"20.0 {model.test.texts[0].decode()}"
    for _ in range(threads * calls):
        reference.learn(text)
    expected = [reference.predict(t.decode()) for t in model.test.texts.tolist()]
    np.testing.assert_array_equal(served, np.asarray(expected, np.float32))


def test_a_read_only_wrapper_refuses_observe(vw_models: dict[str, TrainedModel]) -> None:
    model = vw_models["regression"]
    with (
        start_wrapper("vw", model.path, options={"learn": "false"}) as process,
        client_for(process) as client,
        pytest.raises(WrapperCallError, match=r"INVALID_ARGUMENT: .*does not learn online"),
    ):
        client.observe({"input": model.test.texts[:1]}, model.test.labels[:1])
