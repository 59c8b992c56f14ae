"""Discovering the plugin must not import PyTorch or ONNX: ``ketch serve sklearn`` pays nothing."""

from __future__ import annotations

import subprocess
import sys

FRAMEWORKS = "{m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx')}"


def _imported_frameworks(code: str) -> str:
    script = f"import sys\n{code}\nprint(sorted({FRAMEWORKS}))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout.strip()


def test_importing_the_plugin_module_imports_no_framework() -> None:
    assert _imported_frameworks("import ketch_torch, ketch_torch.plugin") == "[]"


def test_serving_another_framework_imports_no_torch() -> None:
    code = "import ketch\nketch.select_framework('sklearn')\nketch.installed_plugins()"
    assert _imported_frameworks(code) == "[]"
