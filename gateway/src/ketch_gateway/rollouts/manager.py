"""The gateway's rollouts: every model's split, shadow and canary, and the canary controller.

Changes arrive as admin changes (so they are recorded, replayed on restart and applied
by every gateway that shares the store) and are applied here. The controller runs in
each gateway: every :data:`TICK_S` it judges each running canary (its p99, and its
feedback at each look, see :mod:`~ketch_gateway.rollouts.judgement`), and makes the
decision (a step up, a promotion, a rollback) as an admin change of its own. A look
is judged once in a cluster (the store marks it taken), and a decision another
gateway made first is a conflict that is simply dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from ketch_gateway.background import cancel_and_wait
from ketch_gateway.catalog import Catalog
from ketch_gateway.correction.queries import Feedback
from ketch_gateway.errors import ApiError, Conflict, NotFound
from ketch_gateway.metrics import Metrics
from ketch_gateway.rollouts.answers import is_wrong
from ketch_gateway.rollouts.config import RolloutConfig, ShadowConfig
from ketch_gateway.rollouts.counts import BASELINE, CANARY, CountsStore
from ketch_gateway.rollouts.judgement import Verdict, judge, look_index, look_size
from ketch_gateway.rollouts.metrics import RolloutMetrics
from ketch_gateway.rollouts.phase import PAUSED, PROMOTED, ROLLED_BACK, RUNNING, RolloutPhase
from ketch_gateway.rollouts.query_memory import QueryMemory
from ketch_gateway.rollouts.routing_state import ModelRouting
from ketch_gateway.rollouts.shadow import ShadowMirror
from ketch_gateway.serving.models import Model
from ketch_gateway.stores.contract import StateStore

__all__ = ["Change", "Rollouts", "file_rollout_id"]

_log = logging.getLogger(__name__)

TICK_S: Final = 0.25

Change = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""Makes (applies and records) an admin change: ``Gateway.change``."""


def file_rollout_id(model: str, config: RolloutConfig) -> str:
    """The id of a rollout the configuration file starts: the same on every start."""
    text = json.dumps([model, config.as_json()], sort_keys=True)
    return "file-" + hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


class Rollouts:
    """Splits, shadows and canaries of a gateway's models."""

    def __init__(
        self,
        models: Catalog[Model],
        store: StateStore,
        metrics: Metrics,
        *,
        tick_s: float = TICK_S,
    ) -> None:
        self.models = models
        self.counts = CountsStore(store)
        self.metrics = RolloutMetrics(metrics.registry)
        self.memory = QueryMemory(store)
        self.routes: dict[str, ModelRouting] = {}
        self.change: Change | None = None
        self.tick_s = tick_s
        self.started = False
        self._controller: asyncio.Task[None] | None = None

    # --- the models' settings --------------------------------------------------------------

    def routing(self, name: str) -> ModelRouting:
        """The routing of model ``name`` (NotFound when there is no such model)."""
        model = self.models.find(name)
        found = self.routes.get(name)
        if found is None or found.model is not model:
            found = self.routes[name] = ModelRouting(model, self.memory)
        return found

    def configure(self, model: Model) -> None:
        """Apply what the configuration file says of ``model`` (split, shadow, rollout)."""
        routing = self.routes[model.name] = ModelRouting(model, self.memory)
        config = model.config
        routing.fixed_split = dict(config.split) if config.split is not None else None
        if config.shadow is not None:
            self._set_shadow(routing, config.shadow)
        if config.rollout is not None:
            now = time.time()
            routing.rollout = RolloutPhase(
                file_rollout_id(model.name, config.rollout), model.current, config.rollout, now, now
            )
            self._share_changed(routing)
        routing.refresh()

    async def forget(self, name: str) -> None:
        """Drop a removed model's routing."""
        routing = self.routes.pop(name, None)
        if routing is not None and routing.shadow is not None:
            await routing.shadow.stop()

    def set_split(self, name: str, split: dict[str, float] | None) -> ModelRouting:
        """Split the model's traffic by ``split`` (None: the current version takes it all)."""
        routing = self.routing(name)
        if routing.rollout is not None and routing.rollout.active:
            raise Conflict(
                f"model {name!r} is being rolled out to version {routing.rollout.canary!r}, "
                "which sets its split; abort the rollout first"
            )
        routing.fixed_split = split
        routing.refresh()
        return routing

    def set_shadow(self, name: str, shadow: ShadowConfig | None) -> ModelRouting:
        """Mirror a share of the model's requests to another version (None: stop)."""
        routing = self.routing(name)
        self._set_shadow(routing, shadow)
        routing.refresh()
        return routing

    def _set_shadow(self, routing: ModelRouting, shadow: ShadowConfig | None) -> None:
        old = routing.shadow
        if old is not None:
            asyncio.get_running_loop().create_task(old.stop())
        routing.shadow = None
        if shadow is not None:
            routing.shadow = ShadowMirror(
                routing.model, shadow, self.metrics, routing.shadow_answered
            )
            if self.started:
                routing.shadow.start()

    # --- rollouts, as admin changes apply them -----------------------------------------------

    def start_rollout(self, name: str, config: RolloutConfig, rollout: str, at: float) -> None:
        """Start rolling out ``config.to`` over the model's current version."""
        routing = self.routing(name)
        current = routing.rollout
        if current is not None and current.active:
            raise Conflict(
                f"model {name!r} is already being rolled out to version {current.canary!r} "
                f"({current.status}); abort it first"
            )
        model = routing.model
        model.version(config.to)
        if config.to == model.current:
            raise Conflict(f"version {config.to!r} of model {name!r} already answers every request")
        routing.rollout = RolloutPhase(rollout, model.current, config, at, at)
        routing.refresh()
        self._share_changed(routing)
        _log.info(
            "rollout of model %r to version %r started (steps %s)",
            name,
            config.to,
            list(config.steps),
        )

    def _phase(self, name: str, rollout: str | None = None) -> tuple[ModelRouting, RolloutPhase]:
        routing = self.routing(name)
        phase = routing.rollout
        if phase is None or not phase.active:
            raise NotFound(f"model {name!r} has no rollout running")
        if rollout is not None and phase.id != rollout:
            raise Conflict(f"rollout {rollout!r} of model {name!r} is over")
        return routing, phase

    def advance(self, name: str, rollout: str, step: int, at: float) -> None:
        """Move a running rollout to ``step``; the last step promotes the canary."""
        routing, phase = self._phase(name, rollout)
        if phase.status != RUNNING or step != phase.step + 1 or step >= len(phase.config.steps):
            raise Conflict(
                f"rollout {rollout!r} of model {name!r} is {phase.status} at step {phase.step}; "
                f"it cannot move to step {step}"
            )
        phase.step = step
        phase.step_started_at = at
        phase.passed_look = None
        if phase.share >= 1.0:
            phase.status = PROMOTED
            phase.ended_at = at
            routing.model.set_current(phase.canary)
            self.metrics.decisions.labels(name, PROMOTED, "").inc()
            _log.info("rollout of model %r: version %r promoted to all traffic", name, phase.canary)
        else:
            self.metrics.decisions.labels(name, "step", "").inc()
            _log.info(
                "rollout of model %r: version %r takes %g of traffic (step %d)",
                name,
                phase.canary,
                phase.share,
                step,
            )
        routing.refresh()
        self._share_changed(routing)

    def pause(self, name: str) -> None:
        """Hold a running rollout at its step (it keeps its split and counts)."""
        _, phase = self._phase(name)
        phase.status = PAUSED
        _log.info("rollout of model %r paused at step %d", name, phase.step)

    def resume(self, name: str, at: float) -> None:
        """Let a paused rollout go on (its step's time counts from now)."""
        _, phase = self._phase(name)
        if phase.status != PAUSED:
            raise Conflict(f"the rollout of model {name!r} is {phase.status}, not paused")
        phase.status = RUNNING
        phase.step_started_at = at
        _log.info("rollout of model %r resumed at step %d", name, phase.step)

    def end(self, name: str, outcome: str, reason: str, at: float, rollout: str | None) -> None:
        """Roll back or abort: the baseline takes all traffic again, and says why."""
        routing, phase = self._phase(name, rollout)
        phase.status = outcome
        phase.reason = reason
        phase.ended_at = at
        routing.refresh()
        self._share_changed(routing)
        kind = "p99" if reason.startswith("p99") else "error_rate"
        self.metrics.decisions.labels(name, outcome, kind if outcome == ROLLED_BACK else "").inc()
        _log.warning(
            "rollout of model %r to version %r %s: %s",
            name,
            phase.canary,
            "rolled back" if outcome == ROLLED_BACK else "aborted",
            reason,
        )

    def _share_changed(self, routing: ModelRouting) -> None:
        phase = routing.rollout
        share = phase.share if phase is not None and phase.active else 0.0
        self.metrics.canary_share.labels(routing.model.name).set(share)

    def check_no_rollout(self, name: str) -> None:
        """Conflict while a rollout of ``name`` is running or paused (it owns the split)."""
        routing = self.routes.get(name)
        if routing is not None and routing.rollout is not None and routing.rollout.active:
            raise Conflict(
                f"model {name!r} is being rolled out to version {routing.rollout.canary!r}; "
                "abort the rollout before choosing its version by hand"
            )

    # --- feedback ---------------------------------------------------------------------------

    async def feedback(self, example: Feedback) -> None:
        """Join an example to the query it names: the rollout's arm, the shadow's counts."""
        if example.query_id is None:
            return
        record = await self.memory.recall(example.query_id)
        if record is None:
            return
        answer = record.answer_for(example.row)
        if answer is None:
            return
        wrong = is_wrong(answer, example.label)
        routing = self.routes.get(record.model)
        phase = routing.rollout if routing is not None else None
        if phase is not None and record.rollout == phase.id:
            arm = {phase.baseline: BASELINE, phase.canary: CANARY}.get(record.version)
            if arm is not None:
                await self.counts.add_to_arm(record.model, phase.id, arm, wrong)
                self.metrics.feedback.labels(record.model, arm, "wrong" if wrong else "right").inc()
        shadow_answer = record.shadow_answer_for(example.row)
        if shadow_answer is not None and record.shadow_version is not None:
            await self.counts.add_to_shadow(
                record.model, record.shadow_version, wrong, is_wrong(shadow_answer, example.label)
            )

    # --- the controller ---------------------------------------------------------------------

    def start(self, change: Change) -> None:
        """Start the shadows, the query memory's writer and the controller."""
        self.change = change
        self.started = True
        for routing in self.routes.values():
            if routing.shadow is not None:
                routing.shadow.start()
        self.memory.start()
        self._controller = asyncio.get_running_loop().create_task(self._control_forever())

    async def stop(self) -> None:
        """Stop the controller and the shadows; write the pending query records."""
        await cancel_and_wait(self._controller)
        self._controller = None
        for routing in self.routes.values():
            if routing.shadow is not None:
                await routing.shadow.stop()
        await self.memory.stop()
        self.started = False

    async def _control_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self.tick()
            except Exception:  # the store may be away; the next tick tries again
                _log.exception("judging the rollouts failed")

    async def tick(self) -> None:
        """Judge every running rollout once."""
        for routing in list(self.routes.values()):
            phase = routing.rollout
            if phase is not None and phase.status == RUNNING:
                await self._judge(routing, phase)

    async def _judge(self, routing: ModelRouting, phase: RolloutPhase) -> None:
        name = routing.model.name
        config = phase.config
        if config.max_p99_ms is not None:
            window = routing.latency.get(phase.canary)
            p99 = window.p99_ms() if window is not None else None
            if p99 is not None and p99 > config.max_p99_ms:
                reason = (
                    f"p99 latency {p99:.1f} ms over max_p99_ms {config.max_p99_ms:g} ms "
                    f"(last {window.samples if window else 0} answers of version {phase.canary!r})"
                )
                await self._decide("end_rollout", name, phase, outcome=ROLLED_BACK, reason=reason)
                return
        counts = await self.counts.arms(name, phase.id)
        look = look_index(config.min_feedback, counts.canary.examples)
        if look > counts.looked:
            claimed = await self.counts.claim_look(name, phase.id, look)
            if claimed is not None:
                judgement = judge(
                    claimed.baseline,
                    claimed.canary,
                    margin=config.max_error_increase,
                    confidence=config.confidence,
                    look=look,
                )
                phase.last_judgement = judgement.describe()
                if judgement.verdict is Verdict.WORSE:
                    reason = (
                        f"error rate {claimed.canary.error_rate:.4f} against the baseline's "
                        f"{claimed.baseline.error_rate or 0.0:.4f} "
                        f"({claimed.canary.examples} and {claimed.baseline.examples} examples): "
                        f"worse by more than max_error_increase {config.max_error_increase:g} "
                        f"with confidence {config.confidence:g} ({judgement.describe()})"
                    )
                    await self._decide(
                        "end_rollout", name, phase, outcome=ROLLED_BACK, reason=reason
                    )
                    return
                if judgement.verdict is Verdict.NOT_WORSE:
                    phase.passed_look = look
        if (
            phase.passed_look is not None
            and time.time() - phase.step_started_at >= config.step_every_s
        ):
            await self._decide("advance_rollout", name, phase, step=phase.step + 1)

    async def _decide(self, operation: str, name: str, phase: RolloutPhase, **fields: Any) -> None:
        if self.change is None:
            return
        body = {"model": name, "id": phase.id, "at": time.time(), **fields}
        try:
            await self.change(operation, body)
        except ApiError as error:  # another gateway decided first
            _log.info("rollout of model %r: %s not made: %s", name, operation, error.message)

    # --- what the admin API shows ---------------------------------------------------------

    async def describe(self, name: str) -> dict[str, Any]:
        """A model's routing: its version, split, shadow and rollout, with their counts."""
        routing = self.routing(name)
        model = routing.model
        described: dict[str, Any] = {
            "model": name,
            "version": model.current,
            "split": model.split.as_json() if model.split is not None else None,
            "shadow": None,
            "rollout": None,
            "latency_p99_ms": {
                version: window.p99_ms() for version, window in routing.latency.items()
            },
        }
        if routing.shadow is not None:
            shadow = routing.shadow
            joined = await self.counts.shadow(name, shadow.config.version)
            described["shadow"] = {**shadow.describe(), "feedback": _rates(joined)}
        phase = routing.rollout
        if phase is not None:
            counts = await self.counts.arms(name, phase.id)
            next_look = look_size(phase.config.min_feedback, counts.looked + 1)
            described["rollout"] = {
                **phase.as_json(),
                "feedback": {
                    BASELINE: _arm_json(counts.baseline),
                    CANARY: _arm_json(counts.canary),
                    "looks_taken": counts.looked + 1,
                    "next_look_at": next_look if phase.active else None,
                },
            }
        return described

    async def describe_all(self) -> list[dict[str, Any]]:
        """Every model's routing."""
        return [await self.describe(name) for name in self.models]

    async def describe_steered(self) -> list[dict[str, Any]]:
        """The routing of the models with a split, a shadow or a rollout (running or over)."""
        return [
            await self.describe(name)
            for name, routing in list(self.routes.items())
            if name in self.models
            and (
                routing.model.split is not None
                or routing.shadow is not None
                or routing.rollout is not None
            )
        ]


def _arm_json(arm: Any) -> dict[str, Any]:
    return {"examples": arm.examples, "errors": arm.errors, "error_rate": arm.error_rate}


def _rates(joined: dict[str, int]) -> dict[str, Any]:
    examples = joined["examples"]
    return {
        **joined,
        "answered_error_rate": joined["answered_wrong"] / examples if examples else None,
        "shadow_error_rate": joined["shadow_wrong"] / examples if examples else None,
    }
