"""The pluggy plugin manager that knows Ketch's hook spec."""

from __future__ import annotations

import inspect
from typing import cast

import pluggy

from ketch import hookspecs

__all__ = ["HOOK_PREFIX", "KetchPluginManager", "hook_names"]

HOOK_PREFIX = "ketch_"


def hook_names() -> tuple[str, ...]:
    """Every hook the spec defines, in the order the runtime calls them."""
    return (
        "ketch_load",
        "ketch_place",
        "ketch_signature",
        "ketch_batch_predict",
        "ketch_observe",
        "ketch_example_inputs",
        "ketch_unload",
    )


class KetchPluginManager(pluggy.PluginManager):
    """A plugin manager for the ``ketch`` hooks.

    Any callable attribute named ``ketch_*`` counts as a hook implementation,
    marked or not, so that a misspelt hook name is caught by
    :meth:`check_pending` instead of being silently ignored.
    """

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        """The marker's options, or default options for an unmarked ``ketch_*`` routine."""
        opts = super().parse_hookimpl_opts(plugin, name)
        unmarked = opts is None and name.startswith(HOOK_PREFIX)
        if unmarked and inspect.isroutine(getattr(plugin, name, None)):
            return cast(pluggy.HookimplOpts, {})
        return opts

    def hook_options(self, plugin: object) -> dict[str, pluggy.HookimplOpts]:
        """The hook implementations ``plugin`` would register, by attribute name."""
        found: dict[str, pluggy.HookimplOpts] = {}
        for attribute in dir(plugin):
            if not attribute.startswith(HOOK_PREFIX):
                continue
            opts = self.parse_hookimpl_opts(plugin, attribute)
            if opts is not None:
                found[attribute] = opts
        return found

    def only_wraps(self, plugin: object) -> bool:
        """Whether every hook ``plugin`` implements is a wrapper: a cross-cutting plugin."""
        options = self.hook_options(plugin).values()
        return bool(options) and all(
            opts.get("wrapper") or opts.get("hookwrapper") for opts in options
        )
