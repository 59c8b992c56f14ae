"""The correction layer for one app: ask the models its policy selects, combine, learn.

An app whose policy is not ``single`` gets a :class:`Corrector`. For a query it
loads the policy's state for the user (else the app's shared state), asks the
selected models in parallel, and at the latency objective combines whatever has
arrived: a model that has not answered counts as its running average answer,
and the confidence falls with the share of the ensemble that is missing. For
feedback it joins the label with every linked model's answer for the input
(from the cache, or asked again), lets the policy learn, for the user and for
the app, and, when the app says so, passes the example on to the models that
learn online, each in its own numbering of the labels
(:mod:`~ketch_gateway.correction.label_mapping`), and reports what each did.

Predictions never wait for the state store: which model answered a query is
written in the background, and a state is read from the store within a quarter
of the time left to the objective, and otherwise (the store is down, or slow)
taken from memory, where the corrector keeps the last state it read or
wrote for each user (10,000 users at most, least recently used out first). That
is read-only: while the store is down, feedback is refused (503), so no state
changes that would have to be written back; the answers use the state as it
was when the store went away. Each state counts the feedback ``examples`` it
has learnt from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ketch import LabelSpec, WrapperCallError
from ketch_gateway.correction.answers import AnswerReader
from ketch_gateway.correction.label_mapping import LabelMapping, LabelRefused
from ketch_gateway.correction.policies import (
    Combined,
    CorrectionPolicy,
    Personalized,
    correction_policy,
)
from ketch_gateway.correction.queries import Feedback, Query
from ketch_gateway.correction.rows import inputs_from_rows
from ketch_gateway.errors import ApiError, BadRequest, Conflict
from ketch_gateway.observability.trace_context import current_trace
from ketch_gateway.stores.contract import PolicyState
from ketch_gateway.stores.guard import StoreUnavailable

if TYPE_CHECKING:
    from ketch_gateway.correction.app import App
    from ketch_gateway.serving.models import ModelVersion

__all__ = ["Corrected", "Corrector", "Learnt"]

_log = logging.getLogger(__name__)

QUERY_MEMORY_S = 3600.0
QUERY_MEMORY_WRITE_S = 1.0
RUNNING_AVERAGE_WEIGHT = 0.05
SHARED = ""
"""The user key of an app's shared state."""
STATE_READ_SHARE = 0.25
"""A prediction reads its state from the store within this share of its time left."""
KNOWN_STATES = 10_000
EXAMPLES = "examples"
"""The key of a state's count of the feedback examples it learnt from."""


@dataclass(frozen=True)
class Corrected:
    """One combined answer per row, and which models were asked and answered."""

    rows: list[Combined]
    asked: list[str]
    failures: dict[str, str]


@dataclass(frozen=True)
class Learnt:
    """What one feedback example taught.

    ``predictions``: every model's answer for its input, by name; ``forwarded``, when
    the app forwards feedback: what each model that learns online did with it.
    """

    predictions: dict[str, Any]
    forwarded: dict[str, dict[str, Any]] | None = None


def _declared_labels(version: ModelVersion) -> LabelSpec | None:
    return version.capabilities.labels if version.capabilities else None


class Corrector:
    """The correction layer of one app: its policy, over the app's models and store."""

    def __init__(self, app: App, seed: int | None = None) -> None:
        config = app.config
        self.app = app
        self.store = app.store
        self.reader = AnswerReader(config.task, config.classes, config.output)  # type: ignore[arg-type]
        self.policy: CorrectionPolicy = correction_policy(
            config.policy, self.reader, config.policy_options
        )
        self.rng = np.random.default_rng(seed)
        self._running: dict[str, np.ndarray] = {}
        self._span_labels = {"ketch.app": app.name, "ketch.policy": config.policy}
        self._known: OrderedDict[str, PolicyState | None] = OrderedDict()
        self._remembering: set[asyncio.Task[None]] = set()

    def _linked(self) -> list[str]:
        """The app's linked models (ApiError when there are none)."""
        models = list(self.app.linked)
        if not models:
            raise Conflict(f"app {self.app.name!r} has no linked model; link one first")
        return models

    # --- state --------------------------------------------------------------------------------

    def _from_store(
        self, stored: PolicyState | None, models: Sequence[str]
    ) -> dict[str, Any] | None:
        if stored is None:
            return None
        state = self.policy.load(stored)
        return state if self.policy.fits(state, models) else None

    async def state_for(
        self, user: str | None, models: Sequence[str], budget: float | None = None
    ) -> dict[str, Any]:
        """The user's state, else the app's shared one, else a fresh one.

        From the store, or, when it is down or takes longer than ``budget`` seconds,
        from the last state read or written here.
        """
        for key in ([user] if user else []) + [SHARED]:
            state = self._from_store(await self._load(key, budget), models)
            if state is not None:
                return state
        return self.policy.initial_state(models)

    async def _load(self, key: str, budget: float | None) -> PolicyState | None:
        try:
            async with asyncio.timeout(budget):
                stored = await self.store.load_policy_state(self.app.name, key)
        except (StoreUnavailable, TimeoutError):
            return self._known.get(key)
        self._keep(key, stored)
        return stored

    def _keep(self, key: str, state: PolicyState | None) -> None:
        """Remember the latest state of ``key``, for when the store cannot be read."""
        self._known[key] = state
        self._known.move_to_end(key)
        if len(self._known) > KNOWN_STATES:
            self._known.popitem(last=False)

    def stand_ins(self, models: Sequence[str]) -> dict[str, np.ndarray]:
        """Each model's running average answer (neutral before its first answer)."""
        return {m: self._running.get(m, self.reader.neutral()) for m in models}

    def _remember_answers(self, answers: Mapping[str, np.ndarray]) -> None:
        for model, values in answers.items():
            mean = values.mean(axis=0)
            previous = self._running.get(model)
            self._running[model] = (
                mean
                if previous is None
                else (1 - RUNNING_AVERAGE_WEIGHT) * previous + RUNNING_AVERAGE_WEIGHT * mean
            )

    # --- queries ------------------------------------------------------------------------------

    async def _answer(self, name: str, rows: Sequence[Any], timeout: float) -> np.ndarray:
        version = self.app.current_version(name)
        signature = await version.require_signature()
        inputs = inputs_from_rows(rows, signature.inputs)
        spec = self.reader.choose_output(name, signature)
        prediction = await version.predictor.predict(inputs, timeout=timeout)
        return self.reader.read(spec, prediction.outputs, _declared_labels(version))

    async def predict(self, query: Query, deadline: float) -> Corrected:
        """Ask the selected models; combine what arrived by the deadline (or all, if told)."""
        models = self._linked()
        loop = asyncio.get_running_loop()
        budget = max(deadline - loop.time(), 0.0) * STATE_READ_SHARE
        traced = current_trace()
        span = traced.child("ketch.policy.select", self._span_labels) if traced else None
        state = await self.state_for(query.user, models, budget)
        asked = self.policy.select(state, models, self.rng)
        if span is not None:
            span.set_attribute("ketch.models.selected", asked)
            span.end()
        timeout = max(deadline - loop.time(), 0.001)
        if not self.app.config.straggler_mitigation:
            timeout = max(self.app.models.find(name).timeout_s for name in asked)
        tasks = {name: loop.create_task(self._answer(name, query.rows, timeout)) for name in asked}
        done, pending = await asyncio.wait(tasks.values(), timeout=timeout)
        for task in pending:
            task.cancel()
        answers: dict[str, np.ndarray] = {}
        failures: dict[str, str] = {}
        for name, task in tasks.items():
            if task not in done:
                failures[name] = "did not answer in time"
                continue
            error = task.exception()
            if isinstance(error, BadRequest):
                raise error
            if error is not None:
                failures[name] = error.message if isinstance(error, ApiError) else str(error)
                continue
            answers[name] = task.result()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*pending, return_exceptions=True)
        self._remember_answers(answers)
        if not self.policy.queries_every_model and answers:
            self._remember_query(query, asked[0])
        if not answers:
            return Corrected([], asked, failures)
        span = traced.child("ketch.policy.combine", self._span_labels) if traced else None
        stand_ins = self.stand_ins(models)
        combined = [
            self.policy.combine(
                state, models, {m: values[row] for m, values in answers.items()}, stand_ins
            )
            for row in range(len(query.rows))
        ]
        if span is not None:
            span.set_attribute("ketch.models.answered", list(answers))
            span.set_attribute("ketch.models.missing", list(failures))
            span.end()
        return Corrected(combined, asked, failures)

    def _remember_query(self, query: Query, model: str) -> None:
        """Note which model answered, for the query's feedback, without waiting for the store.

        If the store cannot take it (within a second), feedback for the query teaches
        every model's reward instead.
        """

        async def remember() -> None:
            try:
                async with asyncio.timeout(QUERY_MEMORY_WRITE_S):
                    await self.store.remember_query(
                        query.id, {"model": model, "user": query.user}, QUERY_MEMORY_S
                    )
            except (StoreUnavailable, TimeoutError):
                _log.debug("query %s not remembered: the state store is unavailable", query.id)

        task = asyncio.get_running_loop().create_task(remember())
        self._remembering.add(task)
        task.add_done_callback(self._remembering.discard)

    async def flush(self) -> None:
        """Wait for the queries being remembered in the background (before the store closes)."""
        await asyncio.gather(*self._remembering, return_exceptions=True)

    def output(self, combined: Combined) -> Any:
        """What the caller gets for a row: the class index, or the value."""
        if self.reader.task == "classification":
            return int(np.argmax(combined.value))
        return float(combined.value)

    # --- feedback -----------------------------------------------------------------------------

    async def _feedback_answer(self, name: str, row: Any) -> np.ndarray:
        model = self.app.models.find(name)
        version = model.version()
        signature = await version.require_signature()
        inputs = inputs_from_rows([row], signature.inputs)
        spec = self.reader.choose_output(name, signature)
        outputs = version.predictor.lookup(inputs)
        if outputs is None:
            outputs = (await version.predictor.predict(inputs, timeout=model.timeout_s)).outputs
        answer: np.ndarray = self.reader.read(spec, outputs, _declared_labels(version))[0]
        return answer

    async def observe(self, example: Feedback) -> Learnt:
        """Learn from one labelled example (and forward it, when the app says so)."""
        try:
            target = self.reader.check_label(example.label)
        except ValueError as error:
            raise BadRequest(str(error)) from None
        models = self._linked()
        results = await asyncio.gather(*(self._feedback_answer(m, example.row) for m in models))
        answers = dict(zip(models, results, strict=True))
        query_id = example.query_id
        remembered = await self.store.recall_query(query_id) if query_id else None
        played = remembered.get("model") if remembered else None
        base = await self.state_for(None, models)

        def learn(shared: bool) -> Callable[[PolicyState | None], PolicyState]:
            def update(stored: PolicyState | None) -> PolicyState:
                state = self._from_store(stored, models)
                examples = int(state.get(EXAMPLES, 0)) if state is not None else 0
                if state is None:
                    state = self.policy.initial_state(models) if shared else base
                if shared and isinstance(self.policy, Personalized):
                    state = self.policy.observe_shared(state, models, answers, target)
                else:
                    state = self.policy.observe(state, models, answers, target, played)
                return {**self.policy.dump(state), EXAMPLES: examples + 1}

            return update

        if example.user:
            state = await self.store.update_policy_state(
                self.app.name, example.user, learn(shared=False)
            )
            self._keep(example.user, state)
        state = await self.store.update_policy_state(self.app.name, SHARED, learn(shared=True))
        self._keep(SHARED, state)
        predictions = {name: answer.tolist() for name, answer in answers.items()}
        if not self.app.config.forward_feedback:
            return Learnt(predictions)
        return Learnt(predictions, await self._forward(example.row, target, models))

    async def _forward(
        self, row: Any, label: float | int, models: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """Teach the linked models that learn online; what each did, by name."""
        report = {}
        for name in models:
            version = self.app.current_version(name)
            if version.capabilities and version.capabilities.observe:
                report[name] = await self._forward_to(name, version, row, label)
        return report

    async def _forward_to(
        self, name: str, version: ModelVersion, row: Any, label: float | int
    ) -> dict[str, Any]:
        """Teach every healthy replica of one model, in its numbering of the labels.

        ``{"label": the model's label or None, "replicas": how many learnt, "error"?: why
        not}``: a label the model has no counterpart for, or its wrapper refused.
        """
        mapping = LabelMapping(self.reader.task, self.reader.classes, _declared_labels(version))
        try:
            theirs = mapping.to_model(label)
        except LabelRefused as error:
            _log.warning("feedback for %s not forwarded: %s", name, error)
            return {"label": None, "replicas": 0, "error": str(error)}
        signature = await version.require_signature()
        inputs = inputs_from_rows([row], signature.inputs)
        labels = np.array([theirs], dtype=np.int64 if isinstance(theirs, int) else np.float64)
        learnt, problems = 0, []
        replicas = version.replicas.healthy()
        for replica in replicas:
            try:
                await replica.client.observe(inputs, labels, model=name)
                learnt += 1
            except WrapperCallError as error:
                _log.warning("feedback for %s not passed to %s: %s", name, replica.address, error)
                problem = (
                    f"the model refused it: {error.message}"
                    if error.code == "INVALID_ARGUMENT"
                    else f"replica {replica.address} did not take it: {error}"
                )
                if problem not in problems:
                    problems.append(problem)
        if not replicas:
            problems.append("no replica of the model is healthy")
        result: dict[str, Any] = {"label": theirs, "replicas": learnt}
        if problems:
            result["error"] = "; ".join(problems)
        return result
