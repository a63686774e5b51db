"""``Register``: one replicated value with compare-and-set."""

from __future__ import annotations

from typing import Generic, TypeVar

from ..replicated import query, replicated

__all__ = ["Register"]

T = TypeVar("T")


@replicated(name="replobj.batteries.Register")
class Register(Generic[T]):
    """A single value, replaced whole.

    Values are compared with ``==`` by :meth:`compare_and_set`; store values whose equality
    is the same on every replica (not objects compared by identity).

    :param initial: the value before any write.
    """

    def __init__(self, initial: T) -> None:
        self._value = initial

    def set(self, value: T) -> None:
        """Replace the value."""
        self._value = value

    def compare_and_set(self, expected: T, new: T) -> bool:
        """Replace the value with ``new`` if it equals ``expected``.

        :returns: whether it swapped (``False``: the value was something else, unchanged).
        """
        if self._value != expected:
            return False
        self._value = new
        return True

    @query
    def get(self) -> T:
        """The value (the replica's own object: do not mutate it)."""
        return self._value
