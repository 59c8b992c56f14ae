"""Online learning in process: updates, labels, concurrency, and saving learned state."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from vw_test_models import TrainedModel, bandit_row, labelled_lines, load, texts_of

from ketch import (
    Framework,
    InvalidInputError,
    ModelRuntime,
)
from ketch_vw import VwModel, sidecar_path


def handle(runtime: ModelRuntime) -> VwModel:
    assert isinstance(runtime.model, VwModel)
    return runtime.model


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll until ``condition`` holds (a generous timeout, not a speed requirement)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


@pytest.mark.parametrize("name", ["regression", "binary", "digits", "bandit"])
def test_observe_learns_exactly_what_vw_learns(
    framework: Framework, model_copy: Callable[[str], TrainedModel], name: str
) -> None:
    model = model_copy(name)
    options = {"actions": "3"} if name == "bandit" else {}
    runtime = load(framework, model.path, **options)
    assert runtime.signature.capabilities.persists_observations
    data = model.test
    assert runtime.observe({"input": data.texts}, data.labels) is True
    reference = model.reference()
    for example in labelled_lines(data, model.task):
        reference.learn(example)
    probe = model.test.texts[:8]
    lines = [text.decode() for text in probe.tolist()]
    expected = [
        reference.predict(line.splitlines() if name == "bandit" else line) for line in lines
    ]
    output = {"regression": "prediction", "binary": "label"}.get(name, "probabilities")
    got = runtime.predict({"input": probe})[output]
    np.testing.assert_array_equal(got, np.asarray(expected, dtype=got.dtype))
    assert handle(runtime).updates == len(data.labels)


def test_predictions_after_an_update_reflect_it(
    framework: Framework, model_copy: Callable[[str], TrainedModel]
) -> None:
    model = model_copy("regression")
    runtime = load(framework, model.path, input="dense", n_features="5")
    row = model.test.rows[:1]
    before = float(runtime.predict({"input": row})["prediction"][0])
    for _ in range(30):
        runtime.observe({"input": row}, np.array([before + 10.0]))
    after = float(runtime.predict({"input": row})["prediction"][0])
    assert after > before + 5.0


def test_bandit_learns_a_changed_preference(
    framework: Framework, model_copy: Callable[[str], TrainedModel]
) -> None:
    model = model_copy("bandit")
    runtime = load(framework, model.path, actions="3")
    row = texts_of([bandit_row(0)])
    assert runtime.predict({"input": row})["probabilities"].argmax() == 0
    for _ in range(60):
        for action in range(3):
            cost = 0.0 if action == 2 else 1.0
            runtime.observe({"input": row}, np.array([[action, cost, 1.0 / 3]]))
    assert runtime.predict({"input": row})["probabilities"].argmax() == 2


def test_predicting_never_teaches(
    framework: Framework, model_copy: Callable[[str], TrainedModel]
) -> None:
    model = model_copy("digits")
    busy = load(framework, model.path)
    quiet = load(framework, model.path)
    data = model.test.take(slice(0, 200))
    for _ in range(3):
        busy.predict({"input": data.texts})
    for runtime in (busy, quiet):
        runtime.observe({"input": data.texts[:50]}, data.labels[:50])
    np.testing.assert_array_equal(
        busy.predict({"input": data.texts})["probabilities"],
        quiet.predict({"input": data.texts})["probabilities"],
    )


@pytest.mark.parametrize(
    ("name", "labels", "message"),
    [
        (
            "digits",
            np.array([0, 3]),
            r"row 0 has the label 0, which this model cannot take: it learns classes 1 to 10",
        ),
        ("digits", np.array([3, 11]), r"row 1 has the label 11, .* classes 1 to 10"),
        ("digits", np.array([1.5, 3.0]), r"expected whole numbers"),
        (
            "digits",
            np.array([[1], [2]]),
            r"one number per row \(shape \[-1\]\), got shape \[2, 1\]",
        ),
        ("digits", np.array([b"1", b"2"], dtype=object), r"expected numbers"),
        ("regression", np.array([np.nan, 1.0]), r"NaN or infinity cannot be learnt from"),
        (
            "binary",
            np.array([1, 2]),
            r"row 1 has the label 2, .*: a binary model learns from -1 \(or 0\) and 1",
        ),
        ("bandit", np.array([0.0, 1.0]), r"rows of \(action index from 0, cost, probability"),
        ("bandit", np.array([[3, 0.0, 0.5], [0, 0.0, 0.5]]), r"row 0 chose action 3, but"),
        ("bandit", np.array([[0, 0.0, 0.0], [0, 0.0, 0.5]]), r"row 0: the probability"),
        ("regression", np.array([1.0]), r"labels: 1 rows for 2 input rows"),
    ],
)
def test_bad_labels_are_named(
    framework: Framework,
    vw_models: dict[str, TrainedModel],
    name: str,
    labels: np.ndarray,
    message: str,
) -> None:
    model = vw_models[name]
    options = {"actions": "3"} if name == "bandit" else {}
    runtime = load(framework, model.path, **options)
    with pytest.raises(InvalidInputError, match=message):
        runtime.observe({"input": model.test.texts[:2]}, labels)
    assert handle(runtime).updates == 0


def test_a_bad_row_leaves_the_model_unchanged(
    framework: Framework, model_copy: Callable[[str], TrainedModel]
) -> None:
    model = model_copy("regression")
    runtime = load(framework, model.path)
    probe = {"input": model.test.texts[:5]}
    before = runtime.predict(probe)["prediction"]
    rows = texts_of(["|f 0:1 1:1", "|f 0:1", "no features here"])
    with pytest.raises(InvalidInputError, match="row 2: 'no features here' is not a VW example"):
        runtime.observe({"input": rows}, np.array([50.0, 50.0, 50.0]))
    rows = texts_of(["|f 0:1 1:1", "|f 0:1e30 1:1e30"])
    with pytest.raises(InvalidInputError, match="row 1 has a feature value that is infinite"):
        runtime.observe({"input": rows}, np.array([50.0, 50.0]))
    np.testing.assert_array_equal(runtime.predict(probe)["prediction"], before)
    assert handle(runtime).updates == 0


def test_read_only_model(framework: Framework, model_copy: Callable[[str], TrainedModel]) -> None:
    model = model_copy("regression")
    original = model.path.read_bytes()
    runtime = load(framework, model.path, learn="false")
    assert not runtime.signature.capabilities.observe
    assert not runtime.signature.capabilities.persists_observations
    assert not runtime.observes
    with pytest.raises(InvalidInputError, match="does not learn online"):
        runtime.observe({"input": model.test.texts[:2]}, model.test.labels[:2])
    runtime.unload()
    assert model.path.read_bytes() == original


def test_concurrent_updates_and_predictions_lose_nothing(
    framework: Framework, model_copy: Callable[[str], TrainedModel]
) -> None:
    """Threads teach the same row over and over while others predict.

    Learning one labelled row N times gives the same model in any order, so the
    result must equal N sequential updates exactly: a lost or torn update shows.
    """
    model = model_copy("regression")
    concurrent = load(framework, model.path)
    sequential = load(framework, model.path)
    row = {"input": model.test.texts[:1]}
    label = np.array([20.0])
    probe = {"input": model.test.texts}
    threads, calls = 4, 50
    failures: list[BaseException] = []
    predictions: list[np.ndarray] = []

    def teach() -> None:
        try:
            for _ in range(calls):
                concurrent.observe(row, label)
        except BaseException as error:
            failures.append(error)

    def ask() -> None:
        try:
            for _ in range(calls):
                predictions.append(concurrent.predict(probe)["prediction"])
        except BaseException as error:
            failures.append(error)

    workers = [threading.Thread(target=teach) for _ in range(threads)]
    workers += [threading.Thread(target=ask) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    assert all(p.shape == (len(model.test.texts),) and np.isfinite(p).all() for p in predictions)
    for _ in range(threads * calls):
        sequential.observe(row, label)
    assert handle(concurrent).updates == threads * calls
    np.testing.assert_array_equal(
        concurrent.predict(probe)["prediction"], sequential.predict(probe)["prediction"]
    )


# --- saving ---------------------------------------------------------------------------------


def predictions_of(framework: Framework, path: Path, texts: np.ndarray) -> np.ndarray:
    runtime = load(framework, path, learn="false")
    try:
        return runtime.predict({"input": texts})["prediction"]
    finally:
        runtime.unload()


def test_unload_saves_learned_state_atomically(
    framework: Framework, model_copy: Callable[[str], TrainedModel]
) -> None:
    model = model_copy("regression")
    os.chmod(model.path, 0o640)
    runtime = load(framework, model.path)
    runtime.observe({"input": model.test.texts}, model.test.labels + 3.0)
    learnt = runtime.predict({"input": model.test.texts})["prediction"]
    runtime.unload()
    np.testing.assert_array_equal(predictions_of(framework, model.path, model.test.texts), learnt)
    assert stat.S_IMODE(model.path.stat().st_mode) == 0o640
    assert sorted(p.name for p in model.path.parent.iterdir()) == [
        "regression.vw",
        "regression.vw.args",
    ]


def test_unload_without_updates_leaves_the_file_alone(
    framework: Framework, model_copy: Callable[[str], TrainedModel]
) -> None:
    model = model_copy("digits")
    original = model.path.read_bytes()
    modified = model.path.stat().st_mtime_ns
    runtime = load(framework, model.path)
    runtime.predict({"input": model.test.texts})
    runtime.unload()
    assert model.path.read_bytes() == original
    assert model.path.stat().st_mtime_ns == modified


def test_save_every_n_updates(
    framework: Framework, model_copy: Callable[[str], TrainedModel]
) -> None:
    model = model_copy("regression")
    original = model.path.read_bytes()
    runtime = load(framework, model.path, save_every_updates="5")
    texts, labels = model.test.texts, model.test.labels + 3.0
    runtime.observe({"input": texts[:4]}, labels[:4])
    assert model.path.read_bytes() == original
    runtime.observe({"input": texts[4:5]}, labels[4:5])
    assert model.path.read_bytes() != original
    assert handle(runtime).unsaved_updates == 0
    learnt = runtime.predict({"input": texts})["prediction"]
    np.testing.assert_array_equal(predictions_of(framework, model.path, texts), learnt)
    runtime.observe({"input": texts[5:9]}, labels[5:9])
    assert handle(runtime).unsaved_updates == 4


def test_save_every_t_seconds(
    framework: Framework, model_copy: Callable[[str], TrainedModel]
) -> None:
    model = model_copy("regression")
    original = model.path.read_bytes()
    runtime = load(framework, model.path, save_every_seconds="0.05")
    runtime.observe({"input": model.test.texts}, model.test.labels + 3.0)
    wait_for(lambda: handle(runtime).unsaved_updates == 0, "the timer to save the model")
    assert model.path.read_bytes() != original
    learnt = runtime.predict({"input": model.test.texts})["prediction"]
    np.testing.assert_array_equal(predictions_of(framework, model.path, model.test.texts), learnt)
    runtime.unload()


def test_save_path_elsewhere_and_resuming_from_it(
    framework: Framework, model_copy: Callable[[str], TrainedModel], tmp_path: Path
) -> None:
    model = model_copy("regression")
    original = model.path.read_bytes()
    state = tmp_path / "state" / "learnt.vw"
    state.parent.mkdir()
    runtime = load(framework, model.path, save_path=str(state))
    assert sidecar_path(state).read_text().split() == model.arguments.split()
    runtime.observe({"input": model.test.texts}, model.test.labels + 3.0)
    learnt = runtime.predict({"input": model.test.texts})["prediction"]
    runtime.unload()
    assert model.path.read_bytes() == original
    resumed = load(framework, model.path, save_path=str(state))
    np.testing.assert_array_equal(
        resumed.predict({"input": model.test.texts})["prediction"], learnt
    )
    resumed.unload()
    np.testing.assert_array_equal(predictions_of(framework, state, model.test.texts), learnt)


def test_a_save_path_that_is_no_model_is_not_resumed_from(
    framework: Framework,
    vw_models: dict[str, TrainedModel],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = vw_models["regression"]
    state = tmp_path / "learnt.vw"
    state.write_text("not a model")
    runtime = load(framework, model.path, save_path=str(state))
    assert "learnt.vw is not a VW model file: starting from" in caplog.text
    expected = predictions_of(framework, model.path, model.test.texts)
    np.testing.assert_array_equal(
        runtime.predict({"input": model.test.texts})["prediction"], expected
    )


def test_a_failed_save_is_logged_and_retried(
    framework: Framework,
    model_copy: Callable[[str], TrainedModel],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = model_copy("regression")
    state = tmp_path / "state" / "learnt.vw"
    state.parent.mkdir()
    runtime = load(framework, model.path, save_path=str(state), save_every_updates="1")
    state.mkdir()  # a folder where the file should go: every save fails
    runtime.observe({"input": model.test.texts[:1]}, model.test.labels[:1])
    assert "saving the VW model to" in caplog.text
    assert handle(runtime).unsaved_updates == 1
    assert [p.name for p in state.parent.iterdir() if p.name.endswith(".tmp")] == []
    state.rmdir()
    runtime.observe({"input": model.test.texts[1:2]}, model.test.labels[1:2])
    assert handle(runtime).unsaved_updates == 0
    assert state.is_file()
    runtime.unload()
