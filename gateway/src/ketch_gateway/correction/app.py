"""Applications: the Clipper-style front door, with a latency objective and a default output."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ketch_gateway.control.config import AppConfig
from ketch_gateway.correction.answer_reserve import AnswerReserve
from ketch_gateway.correction.corrector import Corrector
from ketch_gateway.correction.registry import POLICIES
from ketch_gateway.correction.rows import inputs_from_rows, rows_from_outputs
from ketch_gateway.errors import ApiError, GatewayTimeout, ServiceUnavailable
from ketch_gateway.serving.models import Model
from ketch_gateway.stores.contract import StateStore

__all__ = ["App", "AppAnswer"]

_FALLBACK_ERRORS = (ServiceUnavailable, GatewayTimeout)


@dataclass(frozen=True)
class AppAnswer:
    """One answer per row, whether it is the default output, and why when it is."""

    rows: list[Any]
    default: bool
    query_id: str
    explanation: str | None = None
    model: str | None = None
    sources: Sequence[str] | None = None
    """Per row, where its answer came from (exact, approximate, coalesced, miss) when cached."""
    contributors: list[str] | None = None
    """The models whose answers were combined (correction policies)."""
    confidence: list[float] | None = None
    """Per row, how sure the combined answer is (correction policies)."""


class App:
    """An app: linked models, a policy, a latency objective and (perhaps) a default output."""

    def __init__(self, config: AppConfig, store: StateStore) -> None:
        self.name = config.name
        self.models = list(config.models)
        self.objective_s = config.latency_objective_ms / 1000.0
        self.policy_name = config.policy
        self.default_output = config.default_output
        self.has_default_output = config.has_default_output
        self.config = config
        self.corrector = Corrector(config, store) if POLICIES[config.policy].learns else None
        self.reserve = AnswerReserve(self.objective_s)

    def _first_model(self) -> str:
        """The model that answers alone under the pass-through policy."""
        if not self.models:
            raise ServiceUnavailable("the app has no linked model")
        return self.models[0]

    def _fallback(self, rows: int, query_id: str, reason: str, model: str | None) -> AppAnswer:
        if not self.has_default_output:
            raise ServiceUnavailable(
                f"app {self.name!r}: {reason}, and the app has no default output",
                headers={"Retry-After": "1"},
            )
        return AppAnswer(
            [self.default_output] * rows,
            True,
            query_id,
            f"{reason}; answered the default output",
            model,
        )

    async def predict(
        self,
        rows: Sequence[Any],
        user: str | None,
        find_model: Callable[[str], Model],
        field: str,
        *,
        arrived: float | None = None,
    ) -> AppAnswer:
        """Answer ``rows`` within the latency objective, or with the default output.

        The objective counts from ``arrived`` (the event loop's time the request came
        in; now, when not given); models are waited for until a reserve before it,
        and the reserve learns from how long answering took after the wait.
        """
        loop = asyncio.get_running_loop()
        start = loop.time() if arrived is None else arrived
        cutoff = start + self.objective_s - self.reserve.seconds
        answer = await self._predict(rows, user, find_model, field, cutoff)
        overrun = loop.time() - cutoff
        if overrun >= 0 and self.config.straggler_mitigation:
            self.reserve.record(overrun)
        return answer

    async def _predict(
        self,
        rows: Sequence[Any],
        user: str | None,
        find_model: Callable[[str], Model],
        field: str,
        deadline: float,
    ) -> AppAnswer:
        query_id = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        if self.corrector is not None:
            return await self._predict_corrected(
                self.corrector,
                rows,
                user=user,
                find_model=find_model,
                field=field,
                query_id=query_id,
                deadline=deadline,
            )
        name = self._first_model()
        version = find_model(name).version()
        objective = f"the latency objective of {self.objective_s * 1000:g} ms"
        try:
            async with asyncio.timeout_at(deadline):
                signature = await version.require_signature()
                inputs = inputs_from_rows(rows, signature.inputs, field)
                timeout = max(deadline - loop.time(), 0.001)
                prediction = await version.predictor.predict(inputs, timeout=timeout)
        except TimeoutError:
            return self._fallback(
                len(rows), query_id, f"model {name!r} did not answer within {objective}", name
            )
        except _FALLBACK_ERRORS as error:
            return self._fallback(
                len(rows), query_id, f"model {name!r} could not answer ({error.message})", name
            )
        return AppAnswer(
            rows_from_outputs(prediction.outputs, len(rows)),
            False,
            query_id,
            model=name,
            sources=prediction.sources,
        )

    async def _predict_corrected(
        self,
        corrector: Corrector,
        rows: Sequence[Any],
        *,
        user: str | None,
        find_model: Callable[[str], Model],
        field: str,
        query_id: str,
        deadline: float,
    ) -> AppAnswer:
        corrected = await corrector.predict(
            self.name,
            rows,
            user,
            models=self.models,
            find_model=find_model,
            field=field,
            deadline=deadline,
            query_id=query_id,
        )
        if not corrected.rows:
            reasons = "; ".join(f"{m}: {why}" for m, why in corrected.failures.items())
            return self._fallback(len(rows), query_id, f"no model answered ({reasons})", None)
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
            query_id,
            explanation,
            contributors=corrected.rows[0].contributors,
            confidence=[round(c.confidence, 6) for c in corrected.rows],
        )

    async def feedback(
        self,
        row: Any,
        label: Any,
        *,
        user: str | None,
        query_id: str | None,
        find_model: Callable[[str], Model],
    ) -> Any:
        """Validate and learn from one example; the prediction(s) it was joined with."""
        if self.corrector is not None:
            return await self.corrector.observe(
                self.name,
                row,
                label,
                user=user,
                query_id=query_id,
                models=self.models,
                find_model=find_model,
            )
        return await self.feedback_prediction(row, find_model, "input")

    async def feedback_prediction(
        self, row: Any, find_model: Callable[[str], Model], field: str
    ) -> Any:
        """The model's cached answer for ``row`` (None when it is not cached).

        BadRequest unless ``row`` fits the input of the app's model.
        """
        version = find_model(self._first_model()).version()
        try:
            signature = await version.require_signature()
        except ApiError:
            return None
        inputs = inputs_from_rows([row], signature.inputs, field)
        answer = version.predictor.lookup(inputs)
        return rows_from_outputs(answer, 1)[0] if answer is not None else None

    def describe(self) -> dict[str, object]:
        """What the admin API shows of it."""
        return {
            "name": self.name,
            "models": list(self.models),
            "latency_objective_ms": self.objective_s * 1000.0,
            "answer_reserve_ms": round(self.reserve.seconds * 1000.0, 3),
            "policy": self.policy_name,
            "task": self.config.task if self.corrector else None,
            "default_output": self.default_output if self.has_default_output else None,
            "has_default_output": self.has_default_output,
        }
