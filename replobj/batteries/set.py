"""``Set``: a replicated set that remembers insertion order.

Backed by a ``dict`` rather than a ``set``: a Python set's iteration order depends on
hashes, and string hashes differ from process to process, so ``pop`` and ``members`` would
give different answers on different replicas (and after a snapshot restore).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from ..replicated import query, replicated

__all__ = ["Set"]

T = TypeVar("T")


@replicated(name="replobj.batteries.Set")
class Set(Generic[T]):
    """A set of hashable elements, iterated (and popped) oldest first."""

    def __init__(self) -> None:
        self._members: dict[T, None] = {}

    def add(self, element: T) -> bool:
        """Add ``element``; returns whether it was new."""
        if element in self._members:
            return False
        self._members[element] = None
        return True

    def update(self, elements: Iterable[T]) -> int:
        """Add every element of ``elements``; returns how many were new."""
        return sum(self.add(element) for element in elements)

    def discard(self, element: T) -> bool:
        """Remove ``element``; returns whether it was there."""
        if element not in self._members:
            return False
        del self._members[element]
        return True

    def pop(self) -> T:
        """Remove and return the oldest element.

        :raises KeyError: if the set is empty.
        """
        for element in self._members:
            del self._members[element]
            return element
        raise KeyError("pop from an empty Set")

    def clear(self) -> int:
        """Remove every element; returns how many there were."""
        count = len(self._members)
        self._members.clear()
        return count

    @query
    def contains(self, element: T) -> bool:
        """Whether ``element`` is in the set."""
        return element in self._members

    @query
    def len(self) -> int:
        """How many elements there are."""
        return len(self._members)

    @query
    def members(self) -> list[T]:
        """Every element, oldest first."""
        return list(self._members)
