"""What the admin API may ask of the host: model paths, plugins, trusted files, replicas.

The configuration file is the operator's word; the admin API is anyone who holds
the token. A model or version added over the API is therefore held to the
``[admin]`` table: its model path (and any option that names a file) must resolve,
symlinks and ``..`` included, inside one of ``model_roots``; its plugin must be an
installed one, not an import reference, unless ``import_plugins`` allows it; options
that make a plugin run code from the file (``trust_pickle``, ``trusted_types``) are
refused unless ``trust_pickle`` allows them; and it runs at most ``max_replicas``
managed wrappers. ``auth_failures`` and ``auth_window_s`` bound how fast one client
address may fail to authenticate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ketch_gateway.control.config_reader import Reader

__all__ = [
    "ADMIN_KEYS",
    "FILE_OPTIONS",
    "TRUST_OPTIONS",
    "AdminPolicy",
    "is_import_reference",
    "read_admin_policy",
]

ADMIN_KEYS: Final = frozenset(
    {
        "model_roots",
        "import_plugins",
        "trust_pickle",
        "max_replicas",
        "auth_failures",
        "auth_window_s",
    }
)
TRUST_OPTIONS: Final = ("trust_pickle", "trusted_types")
"""Plugin options that let a model file run code when it loads (pickle, skops types, Keras)."""
FILE_OPTIONS: Final = ("save_path", "save_optimized", "metadata", "examples")
"""Plugin options that name a file the wrapper reads or writes (vw, onnx, torch)."""
_FALSE_WORDS: Final = frozenset({"0", "false", "no", "off"})


def is_import_reference(plugin: str) -> bool:
    """Whether ``plugin`` names code to import (``module:object``) rather than an entry point."""
    return "." in plugin or ":" in plugin


def _within(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


@dataclass(frozen=True)
class AdminPolicy:
    """The ``[admin]`` table: what a change made over the admin API may do.

    :param model_roots: resolved folders that model paths over the API must lie in;
        none means the API may not launch wrappers at all.
    """

    model_roots: tuple[Path, ...] = ()
    import_plugins: bool = False
    trust_pickle: bool = False
    max_replicas: int = 8
    auth_failures: int = 10
    auth_window_s: float = 60.0

    def confine(self, reader: Reader, key: str, given: str, base: Path) -> Path:
        """``given`` (relative to ``base``) resolved; ConfigError unless inside a model root."""
        if not self.model_roots:
            raise reader.error(
                key,
                "the admin API may not launch wrappers from files: no [admin] model_roots are "
                "configured (add addresses of running wrappers, or name the folders in "
                "model_roots)",
            )
        path = Path(given).expanduser()
        resolved = (path if path.is_absolute() else base / path).resolve()
        if not _within(resolved, self.model_roots):
            roots = ", ".join(str(root) for root in self.model_roots)
            raise reader.error(
                key, f"{given!r} resolves outside the admin API's model roots ({roots})"
            )
        return resolved

    def check_plugin(self, reader: Reader, plugin: str) -> None:
        """ConfigError for an import reference, unless ``import_plugins`` allows it."""
        if is_import_reference(plugin) and not self.import_plugins:
            raise reader.error(
                "plugin",
                f"{plugin!r} is an import reference; over the admin API a plugin must be an "
                "installed one, by name (set [admin] import_plugins = true to allow others)",
            )

    def check_options(
        self, reader: Reader, options: Mapping[str, str], base: Path
    ) -> dict[str, str]:
        """The options, with file options confined and resolved; ConfigError for a refused one."""
        checked = dict(options)
        for key, value in options.items():
            if key in TRUST_OPTIONS and not self.trust_pickle:
                word = value.strip().lower()
                if word and word not in _FALSE_WORDS:
                    raise reader.child("options").error(
                        key,
                        "refused over the admin API: it lets the model file run code when it "
                        "loads (set [admin] trust_pickle = true to allow it)",
                    )
            if key in FILE_OPTIONS:
                checked[key] = str(self.confine(reader.child("options"), key, value, base))
        return checked

    def check_count(self, reader: Reader, key: str | None, count: int) -> None:
        """ConfigError when ``count`` managed wrappers exceed ``max_replicas``."""
        if count > self.max_replicas:
            raise reader.error(
                key,
                f"{count} managed wrappers is more than the admin API may run for a version "
                f"([admin] max_replicas = {self.max_replicas})",
            )


def read_admin_policy(reader: Reader, base: Path) -> AdminPolicy:
    """The ``[admin]`` table; model roots are relative to ``base`` and must be folders."""
    reader.check_keys(set(ADMIN_KEYS))
    roots = []
    for given in reader.strings("model_roots", ()):
        path = Path(given).expanduser()
        resolved = (path if path.is_absolute() else base / path).resolve()
        if not resolved.is_dir():
            raise reader.error("model_roots", f"{given!r} is not a folder ({str(resolved)!r})")
        roots.append(resolved)
    return AdminPolicy(
        model_roots=tuple(roots),
        import_plugins=reader.boolean("import_plugins", False),
        trust_pickle=reader.boolean("trust_pickle", False),
        max_replicas=reader.integer("max_replicas", 8, minimum=0),
        auth_failures=reader.integer("auth_failures", 10, minimum=1),
        auth_window_s=reader.number("auth_window_s", 60.0, minimum=0),
    )
