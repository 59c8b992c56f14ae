"""Core rule: many clients at once all get the answers they would get alone."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Final

import numpy as np

from ketch import WrapperCallError, WrapperClient
from ketch_conformance.failures import ConformanceFailure, assert_outputs_equal
from ketch_conformance.registry import CheckContext, check
from ketch_conformance.samples import take_rows
from ketch_conformance.subjects import GrpcSubject

__all__ = ["CALLS_PER_CLIENT", "CLIENTS", "RULES"]

CLIENTS: Final = 32
CALLS_PER_CLIENT: Final = 4
JOIN_TIMEOUT: Final = 300.0
QUEUE_ALLOWANCE: Final = 2
"""A call from one of many clients may wait behind others: it gets twice the call limit."""

Predict = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


def _batches(context: CheckContext) -> list[list[dict[str, np.ndarray]]]:
    """For each client, its calls: the sample rows in an order of its own."""
    rng = np.random.default_rng(7)
    return [
        [take_rows(context.inputs, rng.permutation(context.rows)) for _ in range(CALLS_PER_CLIENT)]
        for _ in range(CLIENTS)
    ]


class _GrpcCaller:
    """One client with a channel of its own, predicting as a concurrent caller."""

    def __init__(self, subject: GrpcSubject) -> None:
        self.client = WrapperClient(subject.process.address, model=subject.process.ready.model)
        self.timeout = QUEUE_ALLOWANCE * subject.call_timeout

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        try:
            return self.client.infer(inputs, timeout=self.timeout)
        except WrapperCallError as error:
            raise ConformanceFailure(f"ModelInfer failed: {error}") from error


def _run_clients(
    predictors: list[Predict], batches: list[list[dict[str, np.ndarray]]]
) -> list[list[Mapping[str, np.ndarray] | BaseException]]:
    """Every client's calls, all clients at once (released together by a barrier)."""
    results: list[list[Mapping[str, np.ndarray] | BaseException]] = [[] for _ in predictors]
    barrier = threading.Barrier(len(predictors))

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=60.0)
        except threading.BrokenBarrierError as error:
            results[index].append(error)
            return
        for inputs in batches[index]:
            try:
                results[index].append(predictors[index](inputs))
            except BaseException as error:
                results[index].append(error)

    threads = [
        threading.Thread(target=run, args=(index,), name=f"ketch-conformance-client-{index}")
        for index in range(len(predictors))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    stuck = sum(thread.is_alive() for thread in threads)
    if stuck:
        raise ConformanceFailure(
            f"{stuck} of {len(threads)} concurrent clients still had no answer after "
            f"{JOIN_TIMEOUT:.0f} s"
        )
    return results


@check(
    "concurrent_clients",
    f"{CLIENTS} clients calling at once each get the answers their batches get alone",
)
def check_concurrent_clients(context: CheckContext) -> None:
    """Each client sends its own orderings of the sample; answers against sequential calls."""
    batches = _batches(context)
    expected = [[context.predict(inputs) for inputs in calls] for calls in batches]
    callers: list[_GrpcCaller] = []
    predictors: list[Predict] = [context.predict] * CLIENTS
    if isinstance(context.subject, GrpcSubject):
        callers = [_GrpcCaller(context.subject) for _ in range(CLIENTS)]
        predictors = list(callers)
    try:
        results = _run_clients(predictors, batches)
    finally:
        for caller in callers:
            caller.client.close()
    where = "over gRPC" if callers else "in process"
    for client, answers in enumerate(results):
        for call, answer in enumerate(answers):
            what = f"{CLIENTS} clients at once ({where}): client {client}, call {call + 1}"
            if isinstance(answer, BaseException):
                raise ConformanceFailure(f"{what} failed: {answer}") from answer
            assert_outputs_equal(
                expected[client][call],
                answer,
                context.tolerance,
                f"{what} got another answer than the same batch asked alone (is "
                "ketch_batch_predict thread-safe?)",
            )


RULES: Final = (check_concurrent_clients,)
"""This module's checks."""
