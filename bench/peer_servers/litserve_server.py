"""LitServe serving the pickled model with its dynamic batching.

    python litserve_server.py MODEL PORT MAX_BATCH WAIT_MS

``LitAPI(max_batch_size=..., batch_timeout=...)`` turns batching on (LitServe's batching
guide); ``batch`` stacks the decoded rows and ``unbatch`` splits the predictions.
"""

from __future__ import annotations

import sys
from typing import Any

import joblib
import litserve as ls
import numpy as np

from oip_json import body_from_labels, rows_from_body


class DigitsAPI(ls.LitAPI):
    """The model behind ``/v2/models/digits/infer``, one row per request."""

    def __init__(self, model_path: str, max_batch: int, wait_s: float) -> None:
        super().__init__(
            max_batch_size=max_batch, batch_timeout=wait_s, api_path="/v2/models/digits/infer"
        )
        self.model_path = model_path

    def setup(self, device: str) -> None:
        """Load the model once per worker."""
        self.model = joblib.load(self.model_path)

    def decode_request(self, request):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN201
        """The request's one row (a parsed JSON body).

        Left unannotated on purpose: LitServe reads this parameter's annotation to pick
        how it parses a body, and only no annotation means "JSON into a dict".
        """
        return rows_from_body(request)[0]

    def batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        """Rows stacked into one array."""
        return np.stack(inputs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The model's classes for a batch of rows."""
        return self.model.predict(x)

    def unbatch(self, output: np.ndarray) -> list[int]:
        """One class per request."""
        return [int(label) for label in output]

    def encode_response(self, output: int) -> dict[str, Any]:
        """The class as an OIP response."""
        return body_from_labels([output])


def main() -> int:
    """Serve until killed."""
    model_path, port, max_batch, wait_ms = sys.argv[1:5]
    api = DigitsAPI(model_path, int(max_batch), float(wait_ms) / 1000.0)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1)
    server.run(host="127.0.0.1", port=int(port), generate_client_file=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
