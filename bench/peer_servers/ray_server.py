"""Ray Serve serving the pickled model with ``@serve.batch``.

    python ray_server.py MODEL PORT MAX_BATCH WAIT_MS

One replica; requests reach it through Ray Serve's HTTP proxy, or through HAProxy when
``RAY_SERVE_ENABLE_HA_PROXY=1`` is set (Ray Serve's HAProxy ingress).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import joblib
import numpy as np
import ray
from ray import serve
from starlette.requests import Request

from oip_json import body_from_labels, rows_from_body


def deployment(max_batch: int, wait_s: float) -> Any:
    """The deployment class, batching as configured."""

    @serve.deployment(num_replicas=1, max_ongoing_requests=max(2 * max_batch, 100))
    class Digits:
        def __init__(self, model_path: str) -> None:
            self.model = joblib.load(model_path)

        @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=wait_s)
        async def classify(self, rows: list[np.ndarray]) -> list[int]:
            return [int(label) for label in self.model.predict(np.stack(rows))]

        async def __call__(self, request: Request) -> dict[str, Any]:
            row = rows_from_body(await request.json())[0]
            return body_from_labels([await self.classify(row)])

    return Digits


def main() -> int:
    """Serve until killed."""
    model_path, port, max_batch, wait_ms = sys.argv[1:5]
    ray.init(include_dashboard=False, logging_level="warning")
    serve.start(http_options={"host": "127.0.0.1", "port": int(port)})
    app = deployment(int(max_batch), float(wait_ms) / 1000.0).bind(model_path)
    serve.run(app, route_prefix="/v2/models/digits/infer")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
