"""The metric and label names a PromQL expression uses, read from its text.

Enough PromQL for dashboards: selectors with label matchers, range selectors,
aggregations with ``by``/``without``, vector matching with ``on``/``ignoring``
and ``group_left``/``group_right``, functions, numbers, Grafana's ``$variables``
and ``label_values(...)`` queries. Not a parser of the whole language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Names", "names_in"]

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_RANGE = re.compile(r"\[[^\]]*\]")
_MATCHERS = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", re.IGNORECASE
)
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        "nan",
    }
)


@dataclass
class Names:
    """Metric names, the labels matched on each, and the labels grouped or joined on."""

    metrics: set[str] = field(default_factory=set)
    matched: dict[str, set[str]] = field(default_factory=dict)
    grouped: set[str] = field(default_factory=set)


def names_in(expression: str) -> Names:
    """The names ``expression`` uses (``label_values(SELECTOR, LABEL)`` included)."""
    names = Names()
    text = _RANGE.sub(" ", expression)
    values = re.fullmatch(r"\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*", text)
    if values:
        text = values.group(1)
        names.grouped.add(values.group(2))

    def selector(found: re.Match[str]) -> str:
        metric = found.group(1) or ""
        labels = set(_MATCHER.findall(_STRING.sub('""', found.group(2))))
        if metric:
            names.matched.setdefault(metric, set()).update(labels)
        return f" {metric} "

    text = _MATCHERS.sub(selector, text)
    text = _STRING.sub(" ", text)
    for _, labels in _GROUPING.findall(text):
        names.grouped.update(label.strip() for label in labels.split(",") if label.strip())
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\$[a-zA-Z_]+", " ", text)
    for found in _IDENTIFIER.finditer(text):
        word = found.group()
        follows = text[found.end() :].lstrip()
        if follows.startswith("(") or word.lower() in _KEYWORDS:
            continue
        names.metrics.add(word)
    return names
