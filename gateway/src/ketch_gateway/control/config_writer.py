"""ketch.toml written from Python values: for scripts that generate configurations.

Tests, benchmarks and deployment tooling all need gateway configurations that differ in
a few values (a model's path, a replica count, an app's objective). Writing them as
TOML text by hand copies the same tables everywhere and invites quoting mistakes (a
Windows path, a string with a quote); building them from these functions keeps one
source for the shape, and ``tomli_w`` does the quoting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import tomli_w

__all__ = ["Table", "app_table", "config_text", "model_table", "version_table", "write_config"]

Table = dict[str, Any]


def version_table(
    plugin: str | None = None,
    path: str | Path | None = None,
    *,
    version: str = "1",
    **settings: Any,
) -> Table:
    """A ``[[models.versions]]`` table: a launched wrapper (plugin and path) or ``addresses``.

    ``settings`` are the table's other keys (``count``, ``options``, ``addresses``, ...).
    """
    table: Table = {"version": version}
    if plugin is not None:
        table["plugin"] = plugin
    if path is not None:
        table["path"] = str(path)
    table.update(settings)
    return table


def model_table(name: str, *versions: Table, **settings: Any) -> Table:
    """A ``[[models]]`` table with its versions; ``settings`` are its other keys (``cache``)."""
    return {"name": name, **settings, "versions": list(versions)}


def app_table(
    name: str, models: Iterable[str], latency_objective_ms: float, **settings: Any
) -> Table:
    """An ``[[apps]]`` table over ``models``; ``settings`` are its other keys (``policy``, ...)."""
    return {
        "name": name,
        "models": list(models),
        "latency_objective_ms": latency_objective_ms,
        **settings,
    }


def config_text(
    *,
    models: Iterable[Table] = (),
    apps: Iterable[Table] = (),
    **sections: Mapping[str, Any] | None,
) -> str:
    """The TOML text of a configuration: ``sections`` (``gateway``, ``admin``, ...) first.

    ``None`` values and sections are left out, so that callers can pass optional ones as
    they are.
    """
    document: Table = {
        name: _without_none(table) for name, table in sections.items() if table is not None
    }
    model_list = [_without_none(table) for table in models]
    app_list = [_without_none(table) for table in apps]
    if model_list:
        document["models"] = model_list
    if app_list:
        document["apps"] = app_list
    return tomli_w.dumps(document)


def write_config(folder: Path, text: str, name: str = "ketch.toml") -> Path:
    """Write configuration ``text`` as ``folder/name``; its path."""
    path = folder / name
    path.write_text(text)
    return path


def _without_none(value: Any) -> Any:
    """``value`` with every ``None`` dropped from the mappings and lists inside it."""
    if isinstance(value, Mapping):
        return {key: _without_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list | tuple):
        return [_without_none(item) for item in value if item is not None]
    return value
