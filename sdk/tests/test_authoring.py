"""The plugin authors' helpers: hooks for their own models only, and options."""

from __future__ import annotations

import inspect
from collections import OrderedDict
from typing import Any

import pytest

from ketch import (
    ModelLoadError,
    ModelSpec,
    check_options,
    handles,
    option_choice,
    option_names,
)


def test_a_hook_answers_none_for_another_plugins_model() -> None:
    @handles(int)
    def double(model: int, factor: int) -> int:
        return model * factor

    assert double(3, 2) == 6
    assert double("three", 2) is None
    by_keyword: Any = double  # as a plugin calling another's hook does: hook(model=..., ...)
    assert by_keyword(model=3, factor=2) == 6
    assert by_keyword(model="three", factor=2) is None
    assert list(inspect.signature(double).parameters) == ["model", "factor"]
    assert double.__name__ == "double"


def test_a_class_named_by_reference_loads_on_the_first_call() -> None:
    @handles("collections:OrderedDict")
    def size(model: OrderedDict[str, int]) -> int:
        return len(model)

    assert size(OrderedDict(a=1)) == 1
    assert size({"a": 1}) is None


def test_a_reference_to_something_else_than_a_class_is_refused() -> None:
    @handles("os.path:join")
    def anything(model: object) -> object:
        return model

    with pytest.raises(TypeError, match="is not a class"):
        anything(1)


KNOWN = {"method": "what to compute", "input": "what a row is"}


def test_unknown_options_are_named_with_what_is_known() -> None:
    check_options(ModelSpec("m.bin", "m", options={"method": "x"}), KNOWN, "demo")
    with pytest.raises(ModelLoadError) as refused:
        check_options(ModelSpec("m.bin", "m", options={"colour": "red"}), KNOWN, "demo")
    assert str(refused.value) == (
        "unknown option(s) colour for the demo plugin; known: method: what to compute; "
        "input: what a row is"
    )


def test_choices_and_names() -> None:
    spec = ModelSpec("m.bin", "m", options={"input": " text ", "method": "a, b,,c"})
    assert option_choice(spec, "input", ("auto", "text"), "auto") == "text"
    assert option_choice(spec, "format", ("auto", "text"), "auto") == "auto"
    with pytest.raises(ModelLoadError, match="option input='text' is not one of auto, numeric"):
        option_choice(spec, "input", ("auto", "numeric"), "auto")
    assert option_names(spec, "method") == ("a", "b", "c")
    assert option_names(spec, "outputs") == ()
