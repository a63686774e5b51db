"""``Counter``: a replicated integer."""

from __future__ import annotations

from ..replicated import query, replicated

__all__ = ["Counter"]


@replicated(name="replobj.batteries.Counter")
class Counter:
    """An integer that commands add to.

    :param initial: the value before any command.
    """

    def __init__(self, initial: int = 0) -> None:
        self._value = initial

    def incr(self, n: int = 1) -> int:
        """Add ``n``; returns the new value."""
        self._value += n
        return self._value

    def decr(self, n: int = 1) -> int:
        """Subtract ``n``; returns the new value."""
        self._value -= n
        return self._value

    @query
    def get(self) -> int:
        """The value."""
        return self._value
