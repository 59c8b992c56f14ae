"""Finding, blocking and selecting plugins.

Plugins are found through the ``ketch`` entry-point group; a plugin can also be
named by import reference (``package.module`` or ``package.module:attribute``),
so that a framework author can serve a plugin before packaging it. The
environment variable ``KETCH_DISABLE_PLUGINS`` (names separated by commas or
spaces) blocks plugins by name; ``KETCH_EXTRA_PLUGINS`` (import references,
separated the same way) adds cross-cutting plugins that are not installed, such
as the conformance suite's own instruments.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points

import pluggy

from ketch.errors import PluginError
from ketch.framework import Framework
from ketch.plugin_manager import KetchPluginManager, hook_names

__all__ = [
    "DISABLE_VARIABLE",
    "ENTRY_POINT_GROUP",
    "EXTRA_VARIABLE",
    "disabled_plugins",
    "extra_plugins",
    "installed_plugins",
    "load_plugin",
    "select_framework",
]

ENTRY_POINT_GROUP = "ketch"
DISABLE_VARIABLE = "KETCH_DISABLE_PLUGINS"
EXTRA_VARIABLE = "KETCH_EXTRA_PLUGINS"

_log = logging.getLogger(__name__)


def installed_plugins() -> dict[str, EntryPoint]:
    """The installed plugins' entry points, by name, sorted."""
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return dict(sorted(found.items()))


def disabled_plugins(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The plugin names that ``KETCH_DISABLE_PLUGINS`` blocks."""
    value = (os.environ if environ is None else environ).get(DISABLE_VARIABLE, "")
    return frozenset(name for name in value.replace(",", " ").split() if name)


def extra_plugins(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The import references that ``KETCH_EXTRA_PLUGINS`` names, in order."""
    value = (os.environ if environ is None else environ).get(EXTRA_VARIABLE, "")
    return tuple(dict.fromkeys(name for name in value.replace(",", " ").split() if name))


def _installed_list(installed: Mapping[str, EntryPoint]) -> str:
    return ", ".join(installed) if installed else "none"


def load_plugin(name: str, installed: Mapping[str, EntryPoint] | None = None) -> object:
    """Import the plugin that ``name`` names: an entry point, else an import reference."""
    installed = installed_plugins() if installed is None else installed
    if name in installed:
        try:
            return installed[name].load()
        except Exception as error:
            raise PluginError(
                f"plugin {name!r} ({installed[name].value}) failed to import: "
                f"{type(error).__name__}: {error}"
            ) from error
    if "." not in name and ":" not in name:
        raise PluginError(
            f"no Ketch plugin named {name!r} is installed (entry-point group "
            f"{ENTRY_POINT_GROUP!r}); installed: {_installed_list(installed)}"
        )
    module_name, _, attribute = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise PluginError(
            f"no Ketch plugin named {name!r}: it is not an installed plugin "
            f"(installed: {_installed_list(installed)}) and {module_name!r} cannot be "
            f"imported ({error})"
        ) from error
    if not attribute:
        return module
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise PluginError(f"module {module_name!r} has no attribute {attribute!r}") from None


def _register(manager: KetchPluginManager, plugin: object, name: str) -> None:
    try:
        manager.register(plugin, name=name)
    except (pluggy.PluginValidationError, ValueError) as error:
        raise PluginError(f"plugin {name!r} breaks the hook spec: {error}") from error


def select_framework(
    name: str,
    *,
    autoload: bool = True,
    plugin: object | None = None,
    cross_cutting: Iterable[object] = (),
    environ: Mapping[str, str] | None = None,
) -> Framework:
    """A plugin manager with exactly one framework plugin, ``name``, and the cross-cutting ones.

    :param name: an installed plugin's name or an import reference.
    :param autoload: also register every installed, unblocked plugin that only
        wraps hooks, and the plugins that ``KETCH_EXTRA_PLUGINS`` names (each must
        only wrap hooks).
    :param plugin: the framework plugin object itself (tests, notebooks); ``name``
        then only labels it.
    :param cross_cutting: further wrapper plugins to register.
    :raises PluginError: the plugin is not installed, is blocked, is not a framework
        plugin, misses a required hook, or implements a hook the spec does not have.
    """
    blocked = disabled_plugins(environ)
    if name in blocked:
        raise PluginError(f"plugin {name!r} is disabled by {DISABLE_VARIABLE}")
    installed = installed_plugins()
    manager = KetchPluginManager()
    framework_plugin = load_plugin(name, installed) if plugin is None else plugin
    if manager.only_wraps(framework_plugin):
        raise PluginError(
            f"plugin {name!r} only wraps hooks; name a framework plugin "
            f"(installed: {_installed_list(installed)})"
        )
    _register(manager, framework_plugin, name)
    extras: list[tuple[str, object]] = []
    if autoload:
        for other_name in installed:
            if other_name == name or other_name in blocked:
                continue
            try:
                other = load_plugin(other_name, installed)
            except PluginError as error:
                _log.warning("skipping plugin %s: %s", other_name, error)
                continue
            if manager.only_wraps(other):
                extras.append((other_name, other))
        for reference in extra_plugins(environ):
            if reference in blocked:
                continue
            other = load_plugin(reference, installed)
            if not manager.only_wraps(other):
                raise PluginError(
                    f"{EXTRA_VARIABLE} names {reference!r}, which is not a cross-cutting "
                    "plugin: every hook it implements must be a wrapper (hookimpl(wrapper=True))"
                )
            extras.append((reference, other))
    extras.extend((manager.get_canonical_name(extra), extra) for extra in cross_cutting)
    for extra_name, extra in extras:
        _register(manager, extra, extra_name)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as error:
        raise PluginError(f"{error}; the hooks are {', '.join(hook_names())}") from error
    return Framework(name, manager, framework_plugin)
