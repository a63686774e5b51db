"""``List``: a replicated sequence."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from ..replicated import query, replicated

__all__ = ["List"]

T = TypeVar("T")


@replicated(name="replobj.batteries.List")
class List(Generic[T]):
    """A sequence with Python ``list`` semantics (negative indexes count from the end).

    Reads return the replica's own element objects: treat them as read-only.
    """

    def __init__(self) -> None:
        self._items: list[T] = []

    def append(self, item: T) -> int:
        """Add ``item`` at the end; returns the new length."""
        self._items.append(item)
        return len(self._items)

    def extend(self, items: Iterable[T]) -> int:
        """Add every item of ``items`` at the end; returns the new length."""
        self._items.extend(items)
        return len(self._items)

    def insert(self, index: int, item: T) -> int:
        """Insert ``item`` before ``index`` (as ``list.insert``); returns the new length."""
        self._items.insert(index, item)
        return len(self._items)

    def pop(self, index: int = -1) -> T:
        """Remove and return the item at ``index`` (the last by default).

        :raises IndexError: if the list is empty or ``index`` is out of range.
        """
        return self._items.pop(index)

    def clear(self) -> int:
        """Remove every item; returns how many there were."""
        count = len(self._items)
        self._items.clear()
        return count

    @query
    def get(self, index: int) -> T:
        """The item at ``index``.

        :raises IndexError: if ``index`` is out of range.
        """
        return self._items[index]

    @query
    def slice(self, start: int | None = None, stop: int | None = None) -> list[T]:
        """A copy of ``items[start:stop]``."""
        return self._items[start:stop]

    @query
    def len(self) -> int:
        """How many items there are."""
        return len(self._items)
