"""Plugins for the gateway's own tests: a model whose every prediction fails."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ketch import hookimpl
from ketch_conformance.reference import SoftmaxModel, SoftmaxRegressionPlugin

FAILING_PLUGIN = "gateway_test_plugins:failing"
SECRET = "the model's private detail 0xC0FFEE"


class FailingPlugin(SoftmaxRegressionPlugin):
    """The reference softmax plugin, whose predictions raise an error that is not Ketch's."""

    @hookimpl
    def ketch_batch_predict(
        self, model: object, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        if not isinstance(model, SoftmaxModel):
            return None
        raise ZeroDivisionError(SECRET)


failing = FailingPlugin()
