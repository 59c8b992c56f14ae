"""The observe tier: learning online moves predictions toward the labels, and lasts.

Applies when ``Capabilities.observe`` is declared; needs the target's
``sample_labels``. The model that learns is always a fresh one (a fresh load in
process; over gRPC a wrapper on a copy of the model), so no other check sees it
change.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from ketch import (
    ContractViolation,
    WrapperCallError,
    WrapperClient,
    WrapperProcess,
    start_wrapper,
    validate_outputs,
)
from ketch_conformance.failures import CheckSkipped, ConformanceFailure, assert_outputs_equal
from ketch_conformance.faults import PluginFault
from ketch_conformance.labels import default_prediction_error
from ketch_conformance.registry import (
    OVER_GRPC,
    CheckContext,
    check,
    grpc_subject,
    in_process_subject,
)
from ketch_conformance.subjects import GrpcSubject, error_name
from ketch_conformance.target import ConformanceTarget

__all__ = ["NO_LABELS", "OBSERVE_ROUNDS", "RULES", "LearningRecord"]

OBSERVE_ROUNDS: Final = 10
"""The most times the sample is observed before the suite expects the error to have dropped."""

NO_LABELS: Final = (
    "the target gives no labels to learn from: pass a labels file (ketch conformance --labels "
    "FILE, or pytest --ketch-labels FILE) or set ConformanceTarget.sample_labels"
)

Outputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class LearningRecord:
    """Errors before and after observing, the outputs after, and after a restart (if asked)."""

    error_before: float
    error_after: float
    rounds: int
    last_changed: bool
    outputs_before: Outputs
    outputs_after: Outputs
    outputs_restarted: Outputs | None = None


def _labels(context: CheckContext) -> np.ndarray:
    labels = context.target.sample_labels
    if labels is None:
        raise CheckSkipped(NO_LABELS)
    labels = np.asarray(labels)
    if len(labels) < context.rows:
        raise ConformanceFailure(
            f"the target gives {len(labels)} sample_labels for {context.rows} sample rows"
        )
    return labels[: context.rows]


def _error_function(context: CheckContext) -> Callable[[Outputs, np.ndarray], float]:
    measure = context.target.prediction_error or default_prediction_error

    def error(outputs: Outputs, labels: np.ndarray) -> float:
        try:
            return float(measure(outputs, labels))
        except ValueError as problem:
            raise CheckSkipped(f"cannot measure how far predictions are: {problem}") from problem

    return error


def _learn(
    context: CheckContext,
    predict: Callable[[], Outputs],
    observe: Callable[[np.ndarray], bool],
) -> LearningRecord:
    """Observe the labelled sample until the error drops (at most OBSERVE_ROUNDS times)."""
    labels = _labels(context)
    error = _error_function(context)
    outputs_before = predict()
    before = error(outputs_before, labels)
    after, rounds, changed, outputs_after = before, 0, False, outputs_before
    while rounds < OBSERVE_ROUNDS and not after < before:
        changed = observe(labels)
        rounds += 1
        outputs_after = predict()
        after = error(outputs_after, labels)
    return LearningRecord(before, after, rounds, changed, outputs_before, outputs_after)


def _validated(context: CheckContext, outputs: Mapping[str, np.ndarray], where: str) -> Outputs:
    try:
        return validate_outputs(context.signature, outputs, context.rows, plugin=where)
    except ContractViolation as error:
        raise ConformanceFailure(str(error)) from error


def _learn_in_process(context: CheckContext) -> LearningRecord:
    fresh = in_process_subject(context).load_fresh(context.target)

    def predict() -> Outputs:
        return _validated(context, fresh.predict(context.inputs), "in process, the plugin")

    def observe(labels: np.ndarray) -> bool:
        try:
            return fresh.framework.observe(fresh.model, context.inputs, labels)
        except PluginFault:
            raise
        except Exception as error:
            raise ConformanceFailure(
                f"ketch_observe raised {error_name(error)} on the labelled sample: {error}"
            ) from error

    return _learn(context, predict, observe)


def _call(what: str, call: Callable[[], object]) -> object:
    try:
        return call()
    except WrapperCallError as error:
        raise ConformanceFailure(f"{what} failed: {error}") from error


def _serve(target: ConformanceTarget, model: Path) -> WrapperProcess:
    """A wrapper for ``target`` on the copy of its model at ``model``."""
    return start_wrapper(
        target.plugin,
        model,
        env=target.env,
        echo_stderr=False,
        device=target.device,
        options=target.options,
    )


def _learn_over_grpc(context: CheckContext, restart: bool) -> LearningRecord:
    """A wrapper on a copy of the model learns; then, if asked, a second one starts from it."""
    folder = Path(tempfile.mkdtemp(prefix="ketch-conformance-observe-"))
    try:
        model = context.target.copy_model(folder)
        with (
            _serve(context.target, model) as process,
            WrapperClient(process.address, model=process.ready.model) as client,
        ):

            def predict() -> Outputs:
                outputs = _call("ModelInfer", lambda: client.infer(context.inputs))
                assert isinstance(outputs, dict)
                return _validated(context, outputs, "over gRPC, the wrapper")

            def observe(labels: np.ndarray) -> bool:
                result = _call("Observe", lambda: client.observe(context.inputs, labels))
                return bool(getattr(result, "changed", False))

            record = _learn(context, predict, observe)
        if process.process.returncode != 0:
            raise ConformanceFailure(
                f"the wrapper that learnt exited with status {process.process.returncode} after "
                "SIGTERM"
            )
        if not restart:
            return record
        with (
            _serve(context.target, model) as restarted,
            WrapperClient(restarted.address, model=restarted.ready.model) as client,
        ):
            outputs = _call("ModelInfer after the restart", lambda: client.infer(context.inputs))
            assert isinstance(outputs, dict)
        restarted_outputs = _validated(context, outputs, "after a restart, the wrapper")
        return dataclasses.replace(record, outputs_restarted=restarted_outputs)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _grpc_learning(context: CheckContext) -> LearningRecord:
    subject = grpc_subject(context)
    restart = context.signature.capabilities.persists_observations
    return subject.memo.get("observe", lambda: _learn_over_grpc(context, restart))


@check(
    "observe_moves_toward_labels",
    "learning from labelled rows moves the predictions for those rows toward the labels",
    tier="observe",
)
def check_observe_moves_toward_labels(context: CheckContext) -> None:
    """The sample's error before and after observing its labels (up to OBSERVE_ROUNDS times)."""
    if isinstance(context.subject, GrpcSubject):
        record = _grpc_learning(context)
    else:
        record = _learn_in_process(context)
    if record.error_after < record.error_before:
        return
    if record.error_after > record.error_before:
        how = "it moved away from them"
    else:
        how = f"nothing changed, though ketch_observe said changed={record.last_changed}"
    raise ConformanceFailure(
        f"after observing the {context.rows} labelled sample rows {record.rounds} times, their "
        f"prediction error went from {record.error_before:.6g} to {record.error_after:.6g}: "
        f"observe does not move predictions toward the labels ({how})"
    )


@check(
    "observe_survives_restart",
    "what a wrapper learnt is still there after SIGTERM and a restart",
    tier="observe",
    transports=(OVER_GRPC,),
    needs=("persists_observations",),
)
def check_observe_survives_restart(context: CheckContext) -> None:
    """A wrapper on a copy of the model learns, stops, and a new one on the copy answers."""
    record = _grpc_learning(context)
    if record.outputs_restarted is None:
        raise ConformanceFailure("the wrapper was not restarted")
    try:
        assert_outputs_equal(
            record.outputs_before, record.outputs_after, context.tolerance, "unchanged"
        )
    except ConformanceFailure:
        pass
    else:
        raise ConformanceFailure(
            "observing the labelled sample did not change any answer, so there was nothing to "
            "survive a restart"
        )
    assert_outputs_equal(
        record.outputs_after,
        record.outputs_restarted,
        context.tolerance,
        "after SIGTERM and a restart on the same model, the wrapper does not answer as it did "
        "when it stopped (does ketch_unload save, and ketch_load load, what it learnt?)",
    )


RULES: Final = (check_observe_moves_toward_labels, check_observe_survives_restart)
"""This module's checks, in the order the suite runs them."""
