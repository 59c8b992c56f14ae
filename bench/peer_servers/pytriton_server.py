"""PyTriton: Triton Inference Server calling the pickled model, with its dynamic batcher.

    python pytriton_server.py MODEL PORT MAX_BATCH WAIT_MS

Triton speaks the Open Inference Protocol itself; PyTriton binds a Python function to a
Triton model whose ``max_batch_size`` turns the dynamic batcher on, with at most
``WAIT_MS`` of queue delay.
"""

from __future__ import annotations

import sys

import joblib
import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig


def main() -> int:
    """Serve until killed."""
    model_path, port, max_batch, wait_ms = sys.argv[1:5]
    model = joblib.load(model_path)

    @batch
    def infer(input: np.ndarray) -> dict[str, np.ndarray]:
        return {"predict": model.predict(input).astype(np.int64).reshape(-1, 1)}

    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=int(port),
        grpc_address="127.0.0.1",
        grpc_port=int(port) + 1,
        metrics_port=int(port) + 2,
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name="digits",
            infer_func=infer,
            inputs=[Tensor(name="input", dtype=np.float64, shape=(64,))],
            outputs=[Tensor(name="predict", dtype=np.int64, shape=(1,))],
            config=ModelConfig(
                max_batch_size=int(max_batch),
                batcher=DynamicBatcher(max_queue_delay_microseconds=int(float(wait_ms) * 1000)),
            ),
            strict=False,
        )
        triton.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
