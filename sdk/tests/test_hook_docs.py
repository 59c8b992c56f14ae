"""docs/plugin_hooks.md documents every hook of the spec, with the spec's own signature."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from ketch import hookspecs
from ketch.plugin_manager import hook_names

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugin_hooks.md"


def spec_functions() -> dict[str, object]:
    return {
        name: function
        for name, function in vars(hookspecs).items()
        if name.startswith("ketch_") and inspect.isfunction(function)
    }


def normalise(signature: str) -> str:
    return re.sub(r"\s+", "", signature.replace("'", "")).replace(",)", ")")


def documented_sections() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    parts = re.split(r"^### `(ketch_\w+)`\s*$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def documented_signature(section: str, name: str) -> str:
    match = re.search(rf"```python\s*\n(def {name}\(.*?\)\s*->[^\n]*)\n```", section, re.DOTALL)
    assert match, f"the section for {name} has no ```python def {name}(...) -> ...``` block"
    return match.group(1)


def test_the_spec_and_the_hook_list_agree() -> None:
    assert set(spec_functions()) == set(hook_names())


@pytest.mark.parametrize("name", hook_names())
def test_hook_is_documented_with_its_signature(name: str) -> None:
    sections = documented_sections()
    assert name in sections, f"docs/plugin_hooks.md has no '### `{name}`' section"
    function = spec_functions()[name]
    assert callable(function)
    expected = f"def {name}{inspect.signature(function)}"
    assert normalise(documented_signature(sections[name], name)) == normalise(expected)


@pytest.mark.parametrize("name", hook_names())
def test_firstresult_is_documented(name: str) -> None:
    section = documented_sections()[name]
    match = re.search(r"\*\*Stops at the first non-None result:\*\* (yes|no)", section)
    assert match, f"the section for {name} does not say whether it stops at the first result"
    function = spec_functions()[name]
    opts = function.ketch_spec  # type: ignore[attr-defined]
    assert (match.group(1) == "yes") == bool(opts["firstresult"])


def test_no_section_documents_a_hook_that_does_not_exist() -> None:
    assert set(documented_sections()) <= set(hook_names())
