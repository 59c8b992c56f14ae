"""Typed reading of a parsed TOML or JSON document, with errors that name the key and line."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ketch_gateway.control.toml_lines import KeyPath, TomlLines
from ketch_gateway.errors import format_location

__all__ = ["ConfigError", "Reader", "format_path"]


class ConfigError(ValueError):
    """The configuration is invalid; the message names the file, line, key and problem."""


def format_path(path: KeyPath) -> str:
    """``models[0].versions[1].count`` for ``("models", 0, "versions", 1, "count")``."""
    return format_location(path) or "(top level)"


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


class Reader:
    """One table of a document, read key by key; every error says where.

    :param source: the file name to put in messages (empty for JSON bodies).
    :param lines: the TOML line index, or None when there are no lines to point at.
    """

    def __init__(
        self,
        data: Mapping[str, Any],
        path: KeyPath = (),
        *,
        source: str = "",
        lines: TomlLines | None = None,
    ) -> None:
        self.data = data
        self.path = path
        self.source = source
        self.lines = lines

    def error(self, key: str | int | None, problem: str) -> ConfigError:
        """A ConfigError for ``key`` of this table."""
        path = self.path if key is None else (*self.path, key)
        where = self.source
        line = self.lines.line_of(path) if self.lines else None
        if line is not None:
            where = f"{where}:{line}"
        prefix = f"{where}: " if where else ""
        return ConfigError(f"{prefix}{format_path(path)}: {problem}")

    def child_error(self, key: str, index: int, problem: str) -> ConfigError:
        """A ConfigError for item ``index`` of the array ``key``."""
        return Reader(self.data, (*self.path, key), source=self.source, lines=self.lines).error(
            index, problem
        )

    def check_keys(self, allowed: set[str], required: set[str] | None = None) -> None:
        """ConfigError for an unknown key (listing the allowed ones) or a missing one."""
        for key in self.data:
            if key not in allowed:
                raise self.error(key, f"unknown key; expected one of {', '.join(sorted(allowed))}")
        for key in sorted(required or ()):
            if key not in self.data:
                raise self.error(key, "missing")

    def _get(self, key: str, expected: type | tuple[type, ...], description: str) -> Any:
        value = self.data[key]
        accepted = expected if isinstance(expected, tuple) else (expected,)
        if isinstance(value, bool) and bool not in accepted:
            raise self.error(key, f"expected {description}, got {_kind(value)}")
        if not isinstance(value, expected):
            raise self.error(key, f"expected {description}, got {_kind(value)} {value!r}")
        return value

    def string(self, key: str, default: str | None = None) -> str:
        """A non-empty string (``default`` when absent; an error when both are missing)."""
        if key not in self.data:
            if default is None:
                raise self.error(key, "missing")
            return default
        value = self._get(key, str, "a string")
        if not value.strip():
            raise self.error(key, "must not be empty")
        return str(value)

    def optional_string(self, key: str) -> str | None:
        """A string, or None when absent."""
        return self.string(key) if key in self.data else None

    def integer(self, key: str, default: int | None = None, minimum: int | None = None) -> int:
        """A whole number, at least ``minimum``."""
        if key not in self.data:
            if default is None:
                raise self.error(key, "missing")
            return default
        value = int(self._get(key, int, "an integer"))
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be at least {minimum}, got {value}")
        return value

    def optional_integer(self, key: str, minimum: int | None = None) -> int | None:
        """A whole number, or None when absent."""
        return self.integer(key, minimum=minimum) if key in self.data else None

    def number(
        self,
        key: str,
        default: float | None = None,
        minimum: float | None = None,
        *,
        inclusive: bool = False,
    ) -> float:
        """A number (integer or float), greater than ``minimum`` (or equal, if ``inclusive``)."""
        if key not in self.data:
            if default is None:
                raise self.error(key, "missing")
            return default
        value = float(self._get(key, (int, float), "a number"))
        if minimum is not None and (value < minimum if inclusive else value <= minimum):
            relation = "at least" if inclusive else "greater than"
            raise self.error(key, f"must be {relation} {minimum}, got {value}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        """True or false."""
        if key not in self.data:
            return default
        return bool(self._get(key, bool, "true or false"))

    def strings(self, key: str, default: tuple[str, ...] | None = None) -> tuple[str, ...]:
        """An array of non-empty strings."""
        if key not in self.data:
            if default is None:
                raise self.error(key, "missing")
            return default
        values = self._get(key, list, "an array of strings")
        for index, value in enumerate(values):
            if not isinstance(value, str) or not value.strip():
                raise self.error(
                    key, f"item {index} must be a non-empty string, got {_kind(value)} {value!r}"
                )
        return tuple(values)

    def string_table(self, key: str) -> dict[str, str]:
        """A table of string values (plugin options); numbers and booleans become strings."""
        if key not in self.data:
            return {}
        table = self._get(key, dict, "a table")
        options = {}
        for name, value in table.items():
            if isinstance(value, bool):
                options[name] = "true" if value else "false"
            elif isinstance(value, int | float | str):
                options[name] = str(value)
            else:
                raise self.child(key).error(name, f"expected a string, got {_kind(value)}")
        return options

    def child(self, key: str) -> Reader:
        """The reader for a nested table."""
        value = self.data[key]
        if not isinstance(value, dict):
            raise self.error(key, f"expected a table, got {_kind(value)}")
        return Reader(value, (*self.path, key), source=self.source, lines=self.lines)

    def tables(self, key: str, required: bool = False) -> Iterator[Reader]:
        """Readers for an array of tables (``[[key]]``)."""
        if key not in self.data:
            if required:
                raise self.error(key, "missing")
            return
        items = self._get(key, list, "an array of tables")
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise Reader({}, (*self.path, key), source=self.source, lines=self.lines).error(
                    index, f"expected a table, got {_kind(item)}"
                )
            yield Reader(item, (*self.path, key, index), source=self.source, lines=self.lines)
