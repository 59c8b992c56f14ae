"""Named things of one kind (the gateway's models, its apps), found by name or refused by name."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from ketch_gateway.errors import Conflict, NotFound

__all__ = ["Catalog"]

Item = TypeVar("Item")


class Catalog(Mapping[str, Item], Generic[Item]):
    """A mapping of ``kind``s by name, in the order they were added.

    :meth:`find` is how requests look a name up: an unknown one is NotFound, and
    the message lists the names there are.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Item] = {}

    def __getitem__(self, name: str) -> Item:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def find(self, name: str) -> Item:
        """The item called ``name``; NotFound lists those there are."""
        found = self._items.get(name)
        if found is None:
            known = ", ".join(self._items) or "none"
            raise NotFound(f"unknown {self.kind} {name!r} ({self.kind}s: {known})")
        return found

    def add(self, name: str, item: Item) -> None:
        """Add ``item``; Conflict when the name is taken."""
        if name in self._items:
            raise Conflict(f"{self.kind} {name!r} already exists")
        self._items[name] = item

    def replace(self, name: str, item: Item) -> Item:
        """Put ``item`` in the place of the item called ``name`` (NotFound when there is none).

        The item replaced, which requests already holding it finish with.
        """
        old = self.find(name)
        self._items[name] = item
        return old

    def remove(self, name: str) -> Item:
        """Take the item called ``name`` out (NotFound when there is none); the item."""
        item = self.find(name)
        del self._items[name]
        return item
