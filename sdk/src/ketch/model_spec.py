"""What the runtime asks a plugin to load."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

__all__ = ["TRUE_WORDS", "ModelSpec"]

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
"""Option values that mean yes (options are strings, as on a command line)."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model to load: where it is, what to call it, where to run it, and options.

    ``path`` is a file, a directory or a URI, as the plugin understands it.
    ``options`` are plugin-specific strings (``method=predict_proba``, say).
    """

    path: str
    name: str
    version: str = "1"
    device: str = "cpu"
    options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", str(self.path))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        if not self.name:
            raise ValueError("a model needs a name")
        if not self.version:
            raise ValueError(f"model {self.name!r} needs a version")

    @classmethod
    def from_path(
        cls,
        path: str | Path,
        *,
        name: str | None = None,
        version: str = "1",
        device: str = "cpu",
        options: Mapping[str, str] | None = None,
    ) -> ModelSpec:
        """A spec named after the file's stem unless ``name`` is given."""
        return cls(
            path=str(path),
            name=name or Path(path).stem or "model",
            version=version,
            device=device,
            options=options or {},
        )

    def option(self, key: str, default: str | None = None) -> str | None:
        """One option's value, or ``default``."""
        return self.options.get(key, default)

    def flag(self, key: str) -> bool:
        """Whether a yes/no option is set to yes (``1``, ``true``, ``yes``, ``on``)."""
        value = self.options.get(key)
        return value is not None and value.strip().lower() in TRUE_WORDS
