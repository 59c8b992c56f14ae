"""What the plugin imports: nothing to be discovered, onnxruntime without onnx to serve a graph.

``import onnx`` costs a replica about two seconds of start-up; onnxruntime reads the
file and tells the signature itself, so onnx is imported only for a graph that must be
changed first (a bfloat16 boundary, a legacy opset, ``dtype=float16``). Serving a graph
with ``ketch serve torch`` imports no torch either.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FRAMEWORKS = "{m for m in sys.modules if m.split('.')[0] in ('onnx', 'onnxruntime', 'torch')}"
SERVE_ONE_BATCH = """
import ketch
from ketch_onnx.describe import probe_inputs
framework = ketch.select_framework({plugin!r})
spec = ketch.ModelSpec.from_path({path!r}, options={options!r})
runtime = ketch.ModelRuntime.load(framework, spec)
outputs = runtime.predict(probe_inputs(runtime.signature.inputs, 3))
assert all(len(array) == 3 for array in outputs.values())
"""


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


def _imports_onnx(plugin: str, path: Path, **options: str) -> bool:
    """Whether loading ``path`` and answering one batch, as ``ketch serve`` does, imports onnx."""
    code = SERVE_ONE_BATCH.format(plugin=plugin, path=str(path), options=options)
    imported = _imported_frameworks(code)
    assert "'onnxruntime'" in imported
    return "'onnx'" in imported


@pytest.mark.parametrize("plugin", ["onnx", "torch"])
def test_serving_a_plain_graph_imports_no_onnx(
    zoo: dict[tuple[str, str], Path], words_onnx: Path, plugin: str
) -> None:
    assert not _imports_onnx(plugin, zoo[("mlp", "torchscript")])
    assert not _imports_onnx(plugin, zoo[("cnn", "torchscript")])
    assert not _imports_onnx(plugin, words_onnx)


def test_a_graph_that_must_change_first_imports_onnx(
    zoo: dict[tuple[str, str], Path],
    bfloat16_onnx: Path,
    caffe2_era: tuple[Path, object],
) -> None:
    """The other side of the test above: these graphs do take the longer way, through onnx."""
    assert _imports_onnx("onnx", bfloat16_onnx)
    assert _imports_onnx("onnx", caffe2_era[0])
    assert _imports_onnx("onnx", zoo[("mlp", "torchscript")], dtype="float16")


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
