"""A wrapper's life, watched from outside: loading, readiness, calls in flight, SIGTERM.

One ``ketch serve`` process, paced by :mod:`ketch_conformance.pacing`, is started
without waiting for it; the suite polls its readiness and asks it to predict while
the model loads, then lets a few slow calls start, sends SIGTERM, and records how
the calls ended and how the process exited. Two checks judge the record.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np

from ketch import EXTRA_VARIABLE, Tolerance, WrapperCallError, WrapperClient
from ketch.process import LISTENING_PREFIX, ChildProcess, serve_command, start_child
from ketch_conformance import pacing
from ketch_conformance.failures import ConformanceFailure, assert_outputs_equal
from ketch_conformance.target import ConformanceTarget

__all__ = ["CALL_DELAY", "IN_FLIGHT", "LOAD_DELAY", "LifecycleRecord", "Poll", "record_lifecycle"]

LOAD_DELAY: Final = 1.0
CALL_DELAY: Final = 1.0
IN_FLIGHT: Final = 3
POLL_INTERVAL: Final = 0.05
STARTUP_TIMEOUT: Final = 120.0
SETTLE_TIMEOUT: Final = 30.0


@dataclass(frozen=True)
class Poll:
    """One look at a loading wrapper: what it said about readiness, and how a call went.

    ``answer`` is None when the call was answered correctly, else what went wrong.
    """

    ready: bool
    model_ready: bool
    health: str
    answer: str | None

    @property
    def claims_ready(self) -> bool:
        """Whether any of the three signals said the model can answer."""
        return self.ready or self.model_ready or self.health == "SERVING"


@dataclass
class LifecycleRecord:
    """What happened to one paced wrapper, from start to exit."""

    polls: list[Poll] = field(default_factory=list)
    start_failure: str | None = None
    in_flight: list[str | None] = field(default_factory=list)
    calls_seen_in_flight: int = 0
    exit_status: int | None = None
    hung: bool = False
    log_tail: str = ""


def _answer_problem(
    client: WrapperClient,
    inputs: Mapping[str, np.ndarray],
    expected: Mapping[str, np.ndarray],
    tolerance: Tolerance,
    timeout: float,
) -> str | None:
    try:
        outputs = client.infer(inputs, timeout=timeout)
    except WrapperCallError as error:
        return str(error)
    try:
        assert_outputs_equal(expected, outputs, tolerance, "wrong answers")
    except ConformanceFailure as failure:
        return str(failure)
    return None


def _signal(call: Callable[[], object]) -> object:
    """What a readiness call answered, or None when it failed."""
    try:
        return call()
    except WrapperCallError:
        return None


def _environment(target: ConformanceTarget, control: Path) -> dict[str, str]:
    extras = " ".join(
        part
        for part in (os.environ.get(EXTRA_VARIABLE, ""), target.env.get(EXTRA_VARIABLE, ""))
        if part
    )
    return {
        **target.env,
        EXTRA_VARIABLE: f"{extras} {pacing.REFERENCE}".strip(),
        pacing.LOAD_DELAY_VARIABLE: str(LOAD_DELAY),
        pacing.CONTROL_VARIABLE: str(control),
    }


@dataclass(frozen=True)
class _Sample:
    """A batch and its right answers."""

    inputs: Mapping[str, np.ndarray]
    expected: Mapping[str, np.ndarray]


class _PacedWrapper:
    """One paced ``ketch serve`` process and a client for it, watched into a record."""

    def __init__(
        self, child: ChildProcess, target: ConformanceTarget, control: Path, tolerance: Tolerance
    ) -> None:
        self.child = child
        self.control = control
        self.tolerance = tolerance
        self.shutdown_timeout = target.shutdown_timeout
        address = json.loads(child.ready_line[len(LISTENING_PREFIX) :])["address"]
        self.client = WrapperClient(address, model=target.spec().name, timeout=30.0)
        self.record = LifecycleRecord()

    def problem(self, sample: _Sample, timeout: float = 30.0) -> str | None:
        """What went wrong asking ``sample``, or None when it was answered right."""
        return _answer_problem(self.client, sample.inputs, sample.expected, self.tolerance, timeout)

    def watch_loading(self, sample: _Sample) -> bool:
        """Poll until every signal says ready; whether the wrapper got there."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if not self.child.alive():
                status = self.child.process.wait()
                self.record.start_failure = (
                    f"the wrapper exited with status {status} before it was ready"
                )
                return False
            poll = Poll(
                ready=_signal(self.client.ready) is True,
                model_ready=_signal(self.client.model_ready) is True,
                health=str(_signal(self.client.health) or "UNKNOWN"),
                answer=self.problem(sample),
            )
            self.record.polls.append(poll)
            if poll.ready and poll.model_ready and poll.health == "SERVING":
                return True
            if time.monotonic() > deadline:
                self.record.start_failure = (
                    f"the wrapper was not ready after {STARTUP_TIMEOUT:.0f} s"
                )
                return False
            time.sleep(POLL_INTERVAL)

    def settle(self, sample: _Sample) -> None:
        """Wait until the wrapper answers right (one that claimed ready too early may not yet)."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while self.problem(sample) and time.monotonic() < deadline:
            time.sleep(0.1)

    def calls_in_flight(self) -> int:
        """How many slowed calls have reached the plugin."""
        return sum(
            1 for path in self.control.iterdir() if path.name.startswith(pacing.CALL_MARKER_PREFIX)
        )

    def terminate_during(self, calls: list[_Sample]) -> None:
        """Start slow calls, SIGTERM once they are all in flight, and record how they end."""
        (self.control / pacing.SLOW_FILE).write_text(str(CALL_DELAY), encoding="utf-8")
        record = self.record
        record.in_flight = ["no answer"] * len(calls)
        patience = CALL_DELAY + self.shutdown_timeout

        def call(index: int) -> None:
            record.in_flight[index] = self.problem(calls[index], timeout=patience + 30.0)

        threads = [threading.Thread(target=call, args=(index,)) for index in range(len(calls))]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60.0
        while self.calls_in_flight() < len(calls) and time.monotonic() < deadline:
            time.sleep(0.01)
        record.calls_seen_in_flight = self.calls_in_flight()
        self.child.terminate()
        try:
            record.exit_status = self.child.process.wait(patience)
        except subprocess.TimeoutExpired:
            record.hung = True
            self.child.process.kill()
        for thread in threads:
            thread.join(patience + 30.0)

    def close(self) -> None:
        """Close the client, stop the process if it still runs, keep the end of its log."""
        self.client.close()
        self.child.stop(timeout=5.0)
        self.record.log_tail = "".join(list(self.child.stderr_tail)[-15:])


def record_lifecycle(
    target: ConformanceTarget,
    inputs: Mapping[str, np.ndarray],
    calls: Sequence[tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray]]],
    expected: Mapping[str, np.ndarray],
    tolerance: Tolerance,
) -> LifecycleRecord:
    """Start a paced wrapper for ``target``, watch it load, then stop it during ``calls``.

    :param inputs: the batch to ask while polling, whose right answers are ``expected``.
    :param calls: the batches to have in flight at SIGTERM, with their right answers.
    """
    control = Path(tempfile.mkdtemp(prefix="ketch-conformance-"))
    command = serve_command(
        target.plugin, target.model_path, device=target.device, options=target.options
    )
    try:
        child = start_child(
            command,
            LISTENING_PREFIX,
            label=f"ketch serve {target.plugin} {target.model_path}",
            env=_environment(target, control),
            echo_stderr=False,
        )
    except Exception as error:
        shutil.rmtree(control, ignore_errors=True)
        return LifecycleRecord(start_failure=f"the wrapper did not start: {error}")
    wrapper = _PacedWrapper(child, target, control, tolerance)
    sample = _Sample(inputs, expected)
    try:
        if wrapper.watch_loading(sample):
            wrapper.settle(sample)
            wrapper.terminate_during([_Sample(batch, answers) for batch, answers in calls])
    finally:
        wrapper.close()
        shutil.rmtree(control, ignore_errors=True)
    return wrapper.record
