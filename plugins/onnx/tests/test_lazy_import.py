"""Discovering the plugin imports neither onnx nor onnxruntime; serving a graph imports no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FRAMEWORKS = "{m for m in sys.modules if m.split('.')[0] in ('onnx', 'onnxruntime', 'torch')}"


def _imported_frameworks(code: str) -> str:
    script = f"import sys\n{code}\nprint(sorted({FRAMEWORKS}))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout.strip()


def test_importing_the_plugin_module_imports_no_framework() -> None:
    assert _imported_frameworks("import ketch_onnx, ketch_onnx.plugin") == "[]"


def test_serving_another_framework_imports_no_onnx() -> None:
    code = "import ketch\nketch.select_framework('sklearn')\nketch.installed_plugins()"
    assert _imported_frameworks(code) == "[]"


def test_the_torch_plugin_serves_a_graph_without_importing_torch(
    zoo: dict[tuple[str, str], Path],
) -> None:
    """``ketch serve torch model.onnx`` starts as fast as ``ketch serve onnx model.onnx``."""
    path = zoo[("mlp", "torchscript")]
    code = (
        "import ketch\nframework = ketch.select_framework('torch')\n"
        f"model = framework.place(framework.load(ketch.ModelSpec.from_path({str(path)!r})), 'cpu')"
    )
    assert "'torch'" not in _imported_frameworks(code)
