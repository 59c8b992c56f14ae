"""Core rules about a wrapper's life: ready only when it can answer; SIGTERM finishes calls.

Both judge one paced ``ketch serve`` process (see :mod:`ketch_conformance.lifecycle`),
started once per gRPC subject.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from ketch_conformance.failures import ConformanceFailure
from ketch_conformance.lifecycle import (
    CALL_DELAY,
    IN_FLIGHT,
    LOAD_DELAY,
    LifecycleRecord,
    record_lifecycle,
)
from ketch_conformance.registry import OVER_GRPC, CheckContext, check, grpc_subject
from ketch_conformance.samples import take_rows

__all__ = ["RULES"]


def _lifecycle(context: CheckContext) -> LifecycleRecord:
    """The paced wrapper's record, made once per gRPC subject."""

    def record() -> LifecycleRecord:
        expected = context.predict(context.inputs)
        calls = []
        for shift in range(1, IN_FLIGHT + 1):
            inputs = take_rows(context.inputs, np.roll(np.arange(context.rows), shift))
            calls.append((inputs, context.predict(inputs)))
        return record_lifecycle(context.target, context.inputs, calls, expected, context.tolerance)

    return grpc_subject(context).memo.get("lifecycle", record)


def _with_log(message: str, record: LifecycleRecord) -> str:
    if not record.log_tail:
        return message
    return f"{message}\nthe end of its log:\n{record.log_tail}"


@check(
    "ready_only_when_answering",
    "ServerReady, ModelReady and health say ready only once the model answers correctly",
    transports=(OVER_GRPC,),
)
def check_ready_only_when_answering(context: CheckContext) -> None:
    """Poll a wrapper whose load is delayed by LOAD_DELAY s: every 'ready' must answer."""
    record = _lifecycle(context)
    if record.start_failure:
        raise ConformanceFailure(_with_log(record.start_failure, record))
    for number, poll in enumerate(record.polls, start=1):
        if poll.claims_ready and poll.answer is not None:
            said = f"ServerReady={poll.ready}, ModelReady={poll.model_ready}, health {poll.health}"
            raise ConformanceFailure(
                f"the wrapper reported ready ({said}, poll {number} after a load delayed "
                f"{LOAD_DELAY:.0f} s), but ModelInfer then failed: {poll.answer}; report ready "
                "only once ketch_load has returned a model that can answer"
            )


@check(
    "sigterm_finishes_calls",
    "SIGTERM lets the calls in flight finish with correct answers, then the process exits 0",
    transports=(OVER_GRPC,),
)
def check_sigterm_finishes_calls(context: CheckContext) -> None:
    """SIGTERM while IN_FLIGHT calls, each slowed by CALL_DELAY s, are in the plugin."""
    record = _lifecycle(context)
    if record.start_failure:
        raise ConformanceFailure(_with_log(record.start_failure, record))
    if record.calls_seen_in_flight < len(record.in_flight):
        raise ConformanceFailure(
            f"only {record.calls_seen_in_flight} of {len(record.in_flight)} calls reached "
            "ketch_batch_predict before SIGTERM"
        )
    for number, problem in enumerate(record.in_flight, start=1):
        if problem is not None:
            raise ConformanceFailure(
                _with_log(
                    f"call {number} of {len(record.in_flight)}, in flight when SIGTERM arrived, "
                    f"failed: {problem}; a wrapper finishes its calls in flight before it exits "
                    "(does the plugin install its own SIGTERM handler?)",
                    record,
                )
            )
    timeout = context.target.shutdown_timeout
    if record.hung:
        raise ConformanceFailure(
            _with_log(
                f"the wrapper had not exited {CALL_DELAY + timeout:.0f} s after SIGTERM, though "
                f"its calls in flight took {CALL_DELAY:.0f} s: something keeps it alive (a "
                "thread that is not a daemon, a ketch_unload that blocks)",
                record,
            )
        )
    if record.exit_status != 0:
        raise ConformanceFailure(
            _with_log(f"the wrapper exited with status {record.exit_status} after SIGTERM", record)
        )


RULES: Final = (check_ready_only_when_answering, check_sigterm_finishes_calls)
"""This module's checks, in the order the suite runs them."""
