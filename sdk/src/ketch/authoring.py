"""Helpers for plugin authors: hooks that answer only for their own models, and options.

Every framework plugin's model hooks begin the same way (a model that is not
this plugin's handle gets None, so that pluggy asks the next plugin), and every
plugin reads its ``--option KEY=VALUE`` strings the same way (an unknown key or
a value out of range stops the load with a message that lists what is allowed).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from ketch.errors import ModelLoadError
from ketch.model_spec import ModelSpec

__all__ = ["check_options", "handles", "option_choice", "option_names"]

Model = TypeVar("Model")
Params = ParamSpec("Params")
Result = TypeVar("Result")


def _resolve(reference: str) -> type[Any]:
    module, _, name = reference.partition(":")
    found = getattr(importlib.import_module(module), name)
    if not isinstance(found, type):
        raise TypeError(f"{reference!r} is not a class")
    return found


def handles(
    kind: type[Any] | str,
) -> Callable[
    [Callable[Concatenate[Model, Params], Result]],
    Callable[Concatenate[object, Params], Result | None],
]:
    """Make a model hook answer None for a model that is not a ``kind``.

    ``kind`` is the plugin's model class, or ``"module:Class"`` so that the module
    (which may import the framework) loads only when a hook is first called::

        @hookimpl
        @handles(SklearnModel)
        def ketch_signature(model: SklearnModel) -> Signature:
            return model.signature

    The hook's first parameter is the model (passed by position, as pluggy does, or
    as ``model=``); pluggy still sees the hook's own parameter names.
    """
    resolved: list[type[Any]] = [kind] if isinstance(kind, type) else []

    def decorate(
        hook: Callable[Concatenate[Model, Params], Result],
    ) -> Callable[Concatenate[object, Params], Result | None]:
        @functools.wraps(hook)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            model = args[0] if args else kwargs.get("model")
            if not resolved:
                resolved.append(_resolve(str(kind)))
            if not isinstance(model, resolved[0]):
                return None
            return hook(*args, **kwargs)

        return cast(Callable[Concatenate[object, Params], Result | None], guarded)

    return decorate


def check_options(spec: ModelSpec, known: Mapping[str, str], plugin: str) -> None:
    """ModelLoadError naming the options in ``spec`` that ``known`` (key: meaning) lacks."""
    unknown = sorted(set(spec.options) - set(known))
    if unknown:
        listed = "; ".join(f"{key}: {meaning}" for key, meaning in known.items())
        raise ModelLoadError(
            f"unknown option(s) {', '.join(unknown)} for the {plugin} plugin; known: {listed}"
        )


def option_choice(spec: ModelSpec, key: str, choices: tuple[str, ...], default: str) -> str:
    """The option ``key`` (``default`` when absent); ModelLoadError unless one of ``choices``."""
    value = (spec.option(key) or default).strip()
    if value not in choices:
        raise ModelLoadError(f"option {key}={value!r} is not one of {', '.join(choices)}")
    return value


def option_names(spec: ModelSpec, key: str) -> tuple[str, ...]:
    """The option ``key`` as comma-separated names, blanks dropped (empty when absent)."""
    return tuple(part.strip() for part in (spec.option(key) or "").split(",") if part.strip())
