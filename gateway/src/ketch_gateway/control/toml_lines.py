"""Which line of a TOML file a key comes from, so that configuration errors can point at it.

``tomllib`` parses without positions; this module scans the text once and records
the line of every table header and key assignment under its resolved path, with
arrays of tables counted (``models[1].versions[0].count``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["KeyPath", "TomlLines"]

KeyPath = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_ASSIGNMENT = re.compile(
    r"""^\s*((?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*'))*)\s*="""
)


def _split_key(text: str) -> list[str]:
    parts = re.findall(r"""[A-Za-z0-9_\-]+|"[^"]*"|'[^']*'""", text)
    return [part.strip("\"'") for part in parts]


class TomlLines:
    """Line numbers (1-based) of the keys and tables in one TOML document."""

    def __init__(self, text: str) -> None:
        self._lines: dict[KeyPath, int] = {}
        self._array_lengths: dict[KeyPath, int] = {}
        table: KeyPath = ()
        for number, line in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header and not _ASSIGNMENT.match(line):
                keys = _split_key(header.group(2))
                table = (*self._resolve(keys[:-1]), keys[-1])
                if header.group(1) == "[[":
                    index = self._array_lengths.get(table, 0)
                    self._array_lengths[table] = index + 1
                    table = (*table, index)
                self._lines.setdefault(table, number)
                continue
            assignment = _ASSIGNMENT.match(line)
            if assignment:
                self._lines.setdefault(table + tuple(_split_key(assignment.group(1))), number)

    def _resolve(self, keys: Sequence[str]) -> KeyPath:
        path: KeyPath = ()
        for key in keys:
            path = (*path, key)
            if path in self._array_lengths:
                path = (*path, self._array_lengths[path] - 1)
        return path

    def line_of(self, path: KeyPath) -> int | None:
        """The line where ``path`` (or its nearest recorded ancestor) is written."""
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return None
