"""Rows out of an Open Inference Protocol JSON body, and a prediction back into one.

The peers without OIP endpoints of their own (LitServe, Ray Serve) are sent the very
body that Ketch, MLServer and Triton are sent, and answer in the protocol's shape, so
that every system parses and writes the same bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def rows_from_body(body: dict[str, Any]) -> np.ndarray:
    """The first input tensor of a parsed OIP request, as an FP64 array of rows."""
    tensor = body["inputs"][0]
    return np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])


def body_from_labels(labels: list[int]) -> dict[str, Any]:
    """An OIP response carrying ``labels`` as the INT64 output ``predict``."""
    return {
        "model_name": "digits",
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [len(labels)], "data": labels}
        ],
    }
