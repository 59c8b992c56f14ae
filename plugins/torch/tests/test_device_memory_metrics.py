"""``ketch serve --metrics-port`` reports the GPU memory a torch model holds.

The device memory collector asks the framework the plugin imported, at each
scrape; on a machine without CUDA the GPU test is skipped and the CPU one shows
that nothing is reported for a CPU model.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

from ketch import WrapperClient, start_wrapper


def device_memory(metrics_address: str) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        sample.labels["state"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "ketch_wrapper_device_memory_bytes"
    }


def serve_and_read(path: Path, device: str, rows: np.ndarray) -> dict[str, float]:
    with start_wrapper(
        "torch", path, name="digits", device=device, extra_args=["--metrics-port", "0"]
    ) as wrapper:
        with WrapperClient(wrapper.address, model="digits") as client:
            client.infer({"pixels": rows})
        assert wrapper.ready.metrics is not None
        return device_memory(wrapper.ready.metrics)


def test_a_cpu_model_reports_no_device_memory(
    classifier_paths: dict[str, Path], digits: tuple[np.ndarray, ...]
) -> None:
    assert serve_and_read(classifier_paths["torchscript"], "cpu", digits[2][:8]) == {}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_model_reports_the_memory_torch_holds(
    classifier_paths: dict[str, Path], digits: tuple[np.ndarray, ...]
) -> None:
    readings = serve_and_read(classifier_paths["torchscript"], "cuda:0", digits[2][:64])
    assert readings["allocated"] > 0
    assert readings["reserved"] >= readings["allocated"]
    assert readings["peak"] >= readings["allocated"]
