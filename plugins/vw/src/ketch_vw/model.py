"""A loaded VW model: prediction and online learning behind one lock, and saving its state.

A VW workspace is not thread-safe (parsing reuses a pool of examples, learning
writes the weights in place), while the wrapper runs calls on a thread pool, so
every use of the workspace holds the model's lock. Predictions made after a
learning call returns see its update; a prediction never sees half of one.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from ketch import (
    InvalidInputError,
    ModelNotReadyError,
    Signature,
    TensorSpec,
    text_rows,
    validate_inputs,
    validate_labels,
)
from ketch_vw.arguments import ModelArguments
from ketch_vw.examples import (
    AdfExample,
    adf_example,
    dense_examples,
    labelled,
    single_line_example,
)
from ketch_vw.options import VwOptions
from ketch_vw.persistence import PeriodicSaver, replace_atomically
from ketch_vw.tasks import Task, TaskInfo, bandit_labels, empty_outputs, scalar_label_texts

__all__ = ["PLATFORM", "VwModel"]

PLATFORM: Final = "vowpalwabbit"

_log = logging.getLogger(__name__)

Source = str | list[str]
"""What VW parses for one row: a line, or the lines of a multi-line example."""


class VwModel:
    """The plugin's handle: a VW workspace, what it predicts, and where its state is saved.

    :param workspace: the loaded ``vowpalwabbit.Workspace``.
    :param info: the model's task.
    :param options: the plugin options it was loaded with.
    :param signature: its inputs, outputs and capabilities.
    :param arguments: the VW arguments it was loaded with.
    :param save_path: where learned state is saved (None: it never learns).
    """

    def __init__(
        self,
        workspace: Any,
        info: TaskInfo,
        *,
        options: VwOptions,
        signature: Signature,
        arguments: ModelArguments,
        save_path: Path | None,
    ) -> None:
        self.info = info
        self.options = options
        self.signature = signature
        self.arguments = arguments
        self.save_path = save_path
        self._workspace = workspace
        self._lock = threading.Lock()
        self._updates = 0
        self._saved_updates = 0
        self._closed = False
        self._timer: PeriodicSaver | None = None
        if save_path is not None and options.save_every_seconds is not None:
            self._timer = PeriodicSaver(
                self.save, options.save_every_seconds, name=f"ketch-vw-save-{save_path.name}"
            )

    @property
    def input_spec(self) -> TensorSpec:
        """The single input tensor."""
        return self.signature.inputs[0]

    @property
    def learns(self) -> bool:
        """Whether observed rows update the model."""
        return self.save_path is not None

    @property
    def updates(self) -> int:
        """Rows learnt since the model was loaded."""
        return self._updates

    @property
    def unsaved_updates(self) -> int:
        """Rows learnt since the model was last saved."""
        return self._updates - self._saved_updates

    # --- rows to examples ---------------------------------------------------------------

    def _single_line_examples(self, batch: np.ndarray) -> list[str]:
        name = self.input_spec.name
        if self.options.input_kind == "dense":
            return dense_examples(batch, self.options.namespace, name)
        texts = text_rows(batch, name)
        return [single_line_example(text, name, index) for index, text in enumerate(texts)]

    def _adf_examples(self, batch: np.ndarray) -> list[AdfExample]:
        name = self.input_spec.name
        assert self.options.actions is not None
        texts = text_rows(batch, name)
        return [
            adf_example(text, name, index, self.options.actions) for index, text in enumerate(texts)
        ]

    def _parse(self, source: Source, row: int) -> Any:
        """The workspace's parsed example(s); InvalidInputError when VW cannot use them."""
        try:
            parsed = self._workspace.parse(source)
        except (RuntimeError, TypeError) as error:
            raise InvalidInputError(
                f"input {self.input_spec.name!r} row {row}: VW cannot parse it: {error}"
            ) from None
        lines = parsed if isinstance(parsed, list) else [parsed]
        if not all(math.isfinite(line.get_total_sum_feat_sq()) for line in lines):
            self._workspace.finish_example(parsed)
            raise InvalidInputError(
                f"input {self.input_spec.name!r} row {row} has a feature value that is "
                "infinite or too large"
            )
        return parsed

    def _check_open(self) -> None:
        if self._closed:
            raise ModelNotReadyError("the VW model has been unloaded")

    # --- prediction -----------------------------------------------------------------------

    def _predict_parsed(self, parsed: Any) -> tuple[Any, float]:
        prediction = self._workspace.predict(parsed)
        score = parsed.get_partial_prediction() if self.info.task is Task.BINARY else 0.0
        return prediction, score

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One row of every output per input row; each row is predicted on its own."""
        rows = validate_inputs(self.signature, inputs)
        if rows == 0:
            return dict(empty_outputs(self.signature.outputs))
        batch = inputs[self.input_spec.name]
        sources: list[Source]
        if self.info.task is Task.CONTEXTUAL_BANDIT:
            sources = [example.lines() for example in self._adf_examples(batch)]
        else:
            sources = [*self._single_line_examples(batch)]
        results: list[tuple[Any, float]] = []
        with self._lock:
            self._check_open()
            for row, source in enumerate(sources):
                parsed = self._parse(source, row)
                try:
                    results.append(self._predict_parsed(parsed))
                finally:
                    self._workspace.finish_example(parsed)
        return self._outputs(results)

    def _outputs(self, results: Sequence[tuple[Any, float]]) -> dict[str, np.ndarray]:
        task = self.info.task
        predictions = [prediction for prediction, _ in results]
        if task is Task.REGRESSION:
            return {"prediction": np.asarray(predictions, np.float32)}
        if task is Task.BINARY:
            return {
                "label": np.where(np.asarray(predictions) > 0, 1, -1).astype(np.int64),
                "score": np.asarray([score for _, score in results], np.float32),
            }
        if task is Task.MULTICLASS:
            if not self.info.probabilities:
                return {"label": np.asarray(predictions, np.int64)}
            probabilities = np.asarray(predictions, np.float32)
            labels = probabilities.argmax(axis=1).astype(np.int64) + 1
            return {"label": labels, "probabilities": probabilities}
        width = self.signature.outputs[0].shape[1]
        table = np.zeros((len(predictions), width), np.float32)
        for row, probabilities in enumerate(predictions):
            table[row, : len(probabilities)] = probabilities
        return {"probabilities": table}

    # --- learning -------------------------------------------------------------------------

    def _labelled_sources(self, batch: np.ndarray, labels: np.ndarray) -> list[Source]:
        if self.info.task is Task.CONTEXTUAL_BANDIT:
            adf = self._adf_examples(batch)
            chosen = bandit_labels(labels, [len(example.actions) for example in adf])
            return [example.lines(label) for example, label in zip(adf, chosen, strict=True)]
        texts = scalar_label_texts(self.info, labels)
        lines = self._single_line_examples(batch)
        return [labelled(label, line) for label, line in zip(texts, lines, strict=True)]

    def learn(self, inputs: Mapping[str, np.ndarray], labels: np.ndarray) -> bool:
        """Learn from labelled rows, in order; whether the model changed.

        Every row is parsed and checked before any is learnt, so a bad row leaves
        the model as it was.
        """
        rows = validate_inputs(self.signature, inputs)
        validate_labels(labels, rows)
        if not self.learns or rows == 0:
            return False
        sources = self._labelled_sources(inputs[self.input_spec.name], labels)
        with self._lock:
            self._check_open()
            parsed: list[Any] = []
            try:
                for row, source in enumerate(sources):
                    parsed.append(self._parse(source, row))
                for item in parsed:
                    self._workspace.learn(item)
            finally:
                for item in parsed:
                    self._workspace.finish_example(item)
            self._updates += rows
            every = self.options.save_every_updates
            if every is not None and self.unsaved_updates >= every:
                self._save_logging_errors()
        return True

    # --- saving ---------------------------------------------------------------------------

    def _save_locked(self) -> bool:
        if self.save_path is None or self._updates == self._saved_updates or self._closed:
            return False
        replace_atomically(self.save_path, lambda path: self._workspace.save(str(path)))
        self._saved_updates = self._updates
        _log.info("saved the VW model after %d updates to %s", self._updates, self.save_path)
        return True

    def _save_logging_errors(self) -> None:
        try:
            self._save_locked()
        except Exception:
            _log.exception("saving the VW model to %s failed; will try again", self.save_path)

    def save(self) -> bool:
        """Save the model if it learnt anything since the last save; whether it saved."""
        with self._lock:
            return self._save_locked()

    def close(self) -> None:
        """Stop the save timer, save unsaved updates, and release the workspace."""
        if self._timer is not None:
            self._timer.close()
        with self._lock:
            if self._closed:
                return
            try:
                self._save_locked()
            finally:
                self._closed = True
                self._workspace.finish()
