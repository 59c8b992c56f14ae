"""One model's routing: its split, shadow and rollout, and the answers it watches.

:class:`ModelRouting` puts the split on its model (``Model.split``) and, while
anything is set, watches the model's answers (``Model.watch``): each answer's time
goes into its version's latency window, each app query's answers into the query
memory, and a share of them to the shadow. All of it is a few appends: nothing on
the request path waits.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ketch_gateway.rollouts.latency import LatencyWindow
from ketch_gateway.rollouts.phase import RolloutPhase
from ketch_gateway.rollouts.query_memory import QueryMemory, QueryRecord
from ketch_gateway.rollouts.shadow import MirroredQuery, ShadowMirror
from ketch_gateway.serving.models import Model
from ketch_gateway.serving.split import Split

__all__ = ["ModelRouting"]


class ModelRouting:
    """What routes and watches one model's requests that name no version."""

    def __init__(self, model: Model, memory: QueryMemory) -> None:
        self.model = model
        self.memory = memory
        self.fixed_split: dict[str, float] | None = None
        self.shadow: ShadowMirror | None = None
        self.rollout: RolloutPhase | None = None
        self.latency: dict[str, LatencyWindow] = {}

    def refresh(self) -> None:
        """Put the split on the model (the rollout's, else the fixed one) and watch it if needed."""
        model = self.model
        rollout = self.rollout
        shares = rollout.split() if rollout is not None and rollout.active else self.fixed_split
        model.split = Split(model.name, shares) if shares is not None else None
        watching = model.split is not None or self.shadow is not None
        model.watch = self if watching else None

    def window(self, version: str) -> LatencyWindow:
        """The latency window of ``version`` (made on first use)."""
        found = self.latency.get(version)
        if found is None:
            found = self.latency[version] = LatencyWindow()
        return found

    def answered(
        self,
        version: str,
        seconds: float,
        *,
        query_id: str | None = None,
        rows: Sequence[Any] = (),
        inputs: Mapping[str, np.ndarray] | None = None,
        answers: Sequence[Any] = (),
        default: bool = False,
    ) -> None:
        """Note an answer: its time, what it said (for feedback) and, maybe, mirror it."""
        self.window(version).record(seconds)
        if query_id is None or not answers:
            return
        rollout = self.rollout
        self.memory.note(
            query_id,
            QueryRecord(
                self.model.name,
                version,
                list(answers),
                rows=list(rows) if len(rows) > 1 else None,
                rollout=rollout.id if rollout is not None and rollout.active else None,
            ),
        )
        shadow = self.shadow
        if (
            shadow is not None
            and inputs is not None
            and not default
            and version != shadow.config.version
            and random.random() < shadow.config.share
        ):
            shadow.offer(MirroredQuery(query_id, inputs, list(answers)))

    def shadow_answered(self, query: MirroredQuery, answers: list[Any]) -> None:
        """Keep the shadow's answers next to the caller's, for the query's feedback."""
        if query.query_id is None or self.shadow is None:
            return
        record = self.memory.known(query.query_id)
        if record is None:
            return
        record.shadow_version = self.shadow.config.version
        record.shadow_answers = answers
        self.memory.note(query.query_id, record)
