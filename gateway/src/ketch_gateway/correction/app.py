"""Applications: the Clipper-style front door, with a latency objective and a default output.

An app holds what it answers from: the gateway's models (it asks those linked to
it), its store, and, when its policy learns, its corrector. Under the default
policy, ``single``, the first linked model answers alone.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from ketch_gateway.catalog import Catalog
from ketch_gateway.control.config import AppConfig
from ketch_gateway.correction.answer_reserve import AnswerReserve
from ketch_gateway.correction.corrector import Corrector
from ketch_gateway.correction.labels import check_label_size
from ketch_gateway.correction.queries import AppAnswer, Feedback, Query
from ketch_gateway.correction.registry import POLICIES
from ketch_gateway.correction.rows import inputs_from_rows, rows_from_outputs
from ketch_gateway.errors import (
    ApiError,
    Conflict,
    GatewayTimeout,
    InvalidValue,
    ServiceUnavailable,
)
from ketch_gateway.serving.models import Model, ModelVersion
from ketch_gateway.stores.contract import StateStore

__all__ = ["App", "FeedbackReceipt"]

_FALLBACK_ERRORS = (ServiceUnavailable, GatewayTimeout)


@dataclass(frozen=True)
class FeedbackReceipt:
    """A recorded example: its id, and what it was joined with and passed on to.

    ``prediction``: the model answer(s) it was joined with; ``forwarded``, when the
    app forwards feedback: what each model that learns online did with it.
    """

    feedback_id: int
    prediction: Any
    forwarded: dict[str, dict[str, Any]] | None = None


class App:
    """An app: linked models, a policy, a latency objective and (perhaps) a default output.

    :param models: every model of the gateway; the app asks those it links by name.
    :param store: where feedback is recorded and the policy's state is kept.
    """

    def __init__(self, config: AppConfig, models: Catalog[Model], store: StateStore) -> None:
        self.name = config.name
        self.config = config
        self.models = models
        self.store = store
        self.linked = list(config.models)
        self.objective_s = config.latency_objective_ms / 1000.0
        self.default_output = config.default_output
        self.has_default_output = config.has_default_output
        self.reserve = AnswerReserve(self.objective_s)
        self.corrector = Corrector(self) if POLICIES[config.policy].learns else None

    def current_version(self, name: str) -> ModelVersion:
        """The version that answers for the linked model ``name`` now."""
        return self.models.find(name).version()

    def _first_model(self) -> str:
        """The model that answers alone under the pass-through policy."""
        if not self.linked:
            raise Conflict(f"app {self.name!r} has no linked model; link one first")
        return self.linked[0]

    def _fallback(
        self, rows: int, query_id: str, reason: str, model: str | None, retry_after: str = "1"
    ) -> AppAnswer:
        if not self.has_default_output:
            raise ServiceUnavailable(
                f"app {self.name!r}: {reason}, and the app has no default output",
                headers={"Retry-After": retry_after},
            )
        return AppAnswer(
            [self.default_output] * rows,
            True,
            query_id,
            f"{reason}; answered the default output",
            model,
        )

    async def predict(self, query: Query) -> AppAnswer:
        """Answer the query's rows within the latency objective, or with the default output.

        The objective counts from ``query.arrived``; models are waited for until a
        reserve before it, and the reserve learns from how long answering took after
        the wait. A row that does not fit the model is an InvalidValue located within
        the rows.
        """
        loop = asyncio.get_running_loop()
        start = loop.time() if query.arrived is None else query.arrived
        cutoff = start + self.objective_s - self.reserve.seconds
        if self.corrector is not None:
            answer = await self._predict_corrected(self.corrector, query, cutoff)
        else:
            answer = await self._predict_alone(query, cutoff)
        overrun = loop.time() - cutoff
        if overrun >= 0 and self.config.straggler_mitigation:
            self.reserve.record(overrun)
        return answer

    async def _predict_alone(self, query: Query, deadline: float) -> AppAnswer:
        rows = query.rows
        name = self._first_model()
        version = self.current_version(name)
        objective = f"the latency objective of {self.objective_s * 1000:g} ms"
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline):
                signature = await version.require_signature()
                inputs = inputs_from_rows(rows, signature.inputs)
                timeout = max(deadline - loop.time(), 0.001)
                prediction = await version.predictor.predict(inputs, timeout=timeout)
        except TimeoutError:
            return self._fallback(
                len(rows), query.id, f"model {name!r} did not answer within {objective}", name
            )
        except _FALLBACK_ERRORS as error:
            return self._fallback(
                len(rows),
                query.id,
                f"model {name!r} could not answer ({error.message})",
                name,
                error.headers.get("Retry-After", "1"),
            )
        return AppAnswer(
            rows_from_outputs(prediction.outputs, len(rows)),
            False,
            query.id,
            model=name,
            sources=prediction.sources,
        )

    async def _predict_corrected(
        self, corrector: Corrector, query: Query, deadline: float
    ) -> AppAnswer:
        rows = query.rows
        corrected = await corrector.predict(query, deadline)
        if not corrected.rows:
            reasons = "; ".join(f"{m}: {why}" for m, why in corrected.failures.items())
            return self._fallback(len(rows), query.id, f"no model answered ({reasons})", None)
        threshold = self.config.min_confidence
        outputs = []
        unsure = 0
        for combined in corrected.rows:
            if combined.confidence < threshold and self.has_default_output:
                outputs.append(self.default_output)
                unsure += 1
            else:
                outputs.append(corrector.output(combined))
        if unsure and not self.has_default_output:
            raise ServiceUnavailable(
                f"app {self.name!r}: confidence below {threshold:g}, and no default output"
            )
        explanation = None
        if unsure:
            explanation = (
                f"{unsure} of {len(rows)} rows below the minimum confidence {threshold:g}; "
                "answered the default output for them"
            )
        missing = [m for m in corrected.asked if m in corrected.failures]
        if missing and not explanation:
            explanation = "combined without " + ", ".join(
                f"{m} ({corrected.failures[m]})" for m in missing
            )
        return AppAnswer(
            outputs,
            unsure == len(rows),
            query.id,
            explanation,
            contributors=corrected.rows[0].contributors,
            confidence=[round(c.confidence, 6) for c in corrected.rows],
        )

    async def feedback(self, example: Feedback) -> FeedbackReceipt:
        """Validate, learn from and record one example.

        A row that does not fit the model is an InvalidValue located within the row.
        """
        forwarded = None
        if self.corrector is not None:
            learnt = await self.corrector.observe(example)
            prediction: Any = learnt.predictions
            forwarded = learnt.forwarded
        else:
            await self._check_label(example.label)
            prediction = await self.cached_prediction(example.row)
        feedback_id = await self.store.record_feedback(
            self.name,
            user=example.user,
            row=example.row,
            label=example.label,
            query_id=example.query_id,
            prediction=prediction,
        )
        return FeedbackReceipt(feedback_id, prediction, forwarded)

    async def _check_label(self, label: Any) -> None:
        """InvalidValue (located in ``label``) when it is larger than the model's answer."""
        name = self._first_model()
        try:
            outputs = (await self.current_version(name).require_signature()).outputs
        except ApiError:
            outputs = None
        try:
            check_label_size(label, outputs, name)
        except InvalidValue as error:
            raise error.within("label") from None

    async def cached_prediction(self, row: Any) -> Any:
        """The answering model's cached answer for ``row`` (None when it is not cached)."""
        version = self.current_version(self._first_model())
        try:
            signature = await version.require_signature()
        except ApiError:
            return None
        inputs = inputs_from_rows([row], signature.inputs)
        answer = version.predictor.lookup(inputs)
        return rows_from_outputs(answer, 1)[0] if answer is not None else None

    def describe(self) -> dict[str, object]:
        """What the admin API shows of it."""
        return {
            "name": self.name,
            "models": list(self.linked),
            "latency_objective_ms": self.objective_s * 1000.0,
            "answer_reserve_ms": round(self.reserve.seconds * 1000.0, 3),
            "policy": self.config.policy,
            "task": self.config.task if self.corrector else None,
            "default_output": self.default_output if self.has_default_output else None,
            "has_default_output": self.has_default_output,
        }
