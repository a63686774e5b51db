"""Models of :mod:`replobj.batteries` types: :class:`DictModel` and :class:`QueueModel`.

Record each call under the battery's method name, with the input and output shapes each
model documents. A call that raised the battery's "nothing there" error (``KeyError`` from
``Dict.pop`` without a default, :class:`~replobj.errors.QueueEmptyError` from
``Queue.pop``) applied as a no-op: record it as completed with output :data:`EMPTY`.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Sequence
from typing import Any, Final

from .history import UNKNOWN, HistoryError, Operation

__all__ = ["EMPTY", "DictModel", "Empty", "QueueModel"]


class Empty(enum.Enum):
    """Type of :data:`EMPTY`."""

    EMPTY = "empty"

    def __repr__(self) -> str:
        return "EMPTY"


EMPTY: Final = Empty.EMPTY
"""The output of a call that found nothing: ``Queue.pop`` on an empty queue, ``Dict.pop``
of an absent key without a default."""

_Pairs = frozenset[tuple[Hashable, Hashable]]


def _unsupported(model: object, name: str) -> HistoryError:
    return HistoryError(f"{type(model).__name__} has no operation {name!r}; see its docstring")


class DictModel:
    """``replobj.batteries.Dict``, checked one key at a time.

    - ``get``, ``contains``: input the key; output the value (``None`` if absent) / a bool.
    - ``set``: input ``(key, value)``; output ignored.
    - ``delete``: input the key; output whether the key was there.
    - ``pop``: input the key; output the value, or :data:`EMPTY` if the key was absent.
    - ``setdefault``: input ``(key, default)``; output the value now stored.

    Store values other than ``None`` (a ``get`` cannot tell ``None`` from absent). The state
    is a frozenset of ``(key, value)`` pairs; after :meth:`partition` it holds at most one.
    """

    def init(self) -> _Pairs:
        """The empty mapping."""
        return frozenset()

    def step(self, state: _Pairs, name: str, input: Any, output: Any) -> tuple[bool, _Pairs]:
        """Apply one call (see the class docstring)."""
        key = self.key_of_call(name, input)
        current = next((value for k, value in state if k == key), EMPTY)
        others = frozenset(pair for pair in state if pair[0] != key)
        if name == "get":
            return _matches(output, None if current is EMPTY else current), state
        if name == "contains":
            return _matches(output, current is not EMPTY), state
        if name == "set":
            return True, others | {(key, input[1])}
        if name == "delete":
            return _matches(output, current is not EMPTY), others
        if name == "pop":
            return _matches(output, current), others
        if current is not EMPTY:  # setdefault of a present key
            return _matches(output, current), state
        return _matches(output, input[1]), others | {(key, input[1])}

    def key_of_call(self, name: str, input: Any) -> Hashable:
        """The key a call touches."""
        if name in ("set", "setdefault"):
            key: Hashable = input[0]
            return key
        if name in ("get", "contains", "delete", "pop"):
            key = input
            return key
        raise _unsupported(self, name)

    def partition(self, history: Sequence[Operation]) -> list[list[Operation]]:
        """One sub-history per key: calls on different keys never affect each other."""
        by_key: dict[Hashable, list[Operation]] = {}
        for operation in history:
            key = self.key_of_call(operation.name, operation.input)
            by_key.setdefault(key, []).append(operation)
        return list(by_key.values())

    def is_read_only(self, name: str, input: Any, output: Any) -> bool:
        """Gets and membership tests never change the mapping."""
        return name in ("get", "contains")

    def describe(self, operation: Operation) -> str:
        """Render a call as ``client 2: set('x', 3)``."""
        return operation.describe()

    def describe_state(self, state: Any) -> str:
        """Render the mapping as ``{'x': 3}``."""
        pairs = sorted(state, key=repr)
        return "{" + ", ".join(f"{key!r}: {value!r}" for key, value in pairs) + "}"


class QueueModel:
    """``replobj.batteries.Queue``: first in, first out.

    - ``put``: input the item; output the new length, or ``None`` if not recorded.
    - ``pop``: input ``None``; output the front item, or :data:`EMPTY`.
    - ``peek``: input ``None``; output the front item, or :data:`EMPTY`.
    - ``len``: input ``None``; output the length.

    The state is the tuple of queued items, front first.
    """

    def init(self) -> tuple[Hashable, ...]:
        """The empty queue."""
        return ()

    def step(
        self, state: tuple[Hashable, ...], name: str, input: Any, output: Any
    ) -> tuple[bool, tuple[Hashable, ...]]:
        """Apply one call (see the class docstring)."""
        if name == "put":
            after = (*state, input)
            return output is None or _matches(output, len(after)), after
        if name in ("pop", "peek"):
            front = state[0] if state else EMPTY
            after = state[1:] if name == "pop" else state
            return _matches(output, front), after
        if name == "len":
            return _matches(output, len(state)), state
        raise _unsupported(self, name)

    def is_read_only(self, name: str, input: Any, output: Any) -> bool:
        """Peeks, lengths and pops of an empty queue never change it."""
        return name in ("peek", "len") or (name == "pop" and output is EMPTY)

    def describe(self, operation: Operation) -> str:
        """Render a call as ``client 0: pop() -> 'a'``."""
        return operation.describe()

    def describe_state(self, state: Any) -> str:
        """Render the queue, front first."""
        return f"queue {list(state)!r}"


def _matches(output: Any, expected: Any) -> bool:
    return output is UNKNOWN or output == expected
