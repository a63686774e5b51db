"""``Dict``: a replicated mapping.

Iteration follows insertion order (a Python ``dict``), the same on every replica because
every replica applies the same commands in the same order.
"""

from __future__ import annotations

import enum
from typing import Generic, TypeVar, overload

from ..replicated import query, replicated

__all__ = ["Dict"]

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")


class _NoDefault(enum.Enum):
    TOKEN = "no default"


@replicated(name="replobj.batteries.Dict")
class Dict(Generic[K, V]):
    """A mapping from hashable keys to values.

    Reads return the replica's own value objects: treat them as read-only (or store
    immutable values), or a local mutation would change one replica only.
    """

    def __init__(self) -> None:
        self._data: dict[K, V] = {}

    def set(self, key: K, value: V) -> None:
        """Store ``value`` under ``key``."""
        self._data[key] = value

    def delete(self, key: K) -> bool:
        """Remove ``key``; returns whether it was there."""
        return self._data.pop(key, _NoDefault.TOKEN) is not _NoDefault.TOKEN

    @overload
    def pop(self, key: K) -> V: ...

    @overload
    def pop(self, key: K, default: D) -> V | D: ...

    def pop(self, key: K, default: D | _NoDefault = _NoDefault.TOKEN) -> V | D:
        """Remove ``key`` and return its value, or ``default`` if it is absent.

        :raises KeyError: if ``key`` is absent and no ``default`` was given.
        """
        if default is _NoDefault.TOKEN:
            return self._data.pop(key)
        return self._data.pop(key, default)

    def setdefault(self, key: K, default: V) -> V:
        """The value under ``key``, storing ``default`` there first if it is absent."""
        return self._data.setdefault(key, default)

    def clear(self) -> int:
        """Remove every key; returns how many there were."""
        count = len(self._data)
        self._data.clear()
        return count

    @overload
    def get(self, key: K) -> V | None: ...

    @overload
    def get(self, key: K, default: D) -> V | D: ...

    @query
    def get(self, key: K, default: D | None = None) -> V | D | None:
        """The value under ``key``, or ``default``."""
        return self._data.get(key, default)

    @query
    def contains(self, key: K) -> bool:
        """Whether ``key`` is present."""
        return key in self._data

    @query
    def len(self) -> int:
        """How many keys there are."""
        return len(self._data)

    @query
    def keys(self) -> list[K]:
        """Every key, in insertion order."""
        return list(self._data)

    @query
    def items(self) -> list[tuple[K, V]]:
        """Every ``(key, value)`` pair, in insertion order."""
        return list(self._data.items())
