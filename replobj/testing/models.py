"""Ready-made models: a register, a counter, a set and a key-value map.

Each documents the operation names and the shapes of ``input`` and ``output`` it expects;
record histories in that shape (or write your own model, see :class:`~replobj.testing.Model`).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from .history import UNKNOWN, HistoryError, Operation

__all__ = ["CounterModel", "KeyValueModel", "RegisterModel", "SetModel"]


def _unsupported(model: object, name: str) -> HistoryError:
    return HistoryError(f"{type(model).__name__} has no operation {name!r}; see its docstring")


class RegisterModel:
    """A single read/write register with compare-and-set.

    - ``read``: input ``None``; output the value read.
    - ``write``: input the value; output ignored.
    - ``cas``: input ``(expected, new)``; output ``True`` if the value was ``expected`` and is
      now ``new``, ``False`` if the value was not ``expected`` (nothing changed).

    :param initial: the value before any write.
    """

    def __init__(self, initial: Hashable = None) -> None:
        self.initial = initial

    def init(self) -> Hashable:
        """The initial value."""
        return self.initial

    def step(self, state: Hashable, name: str, input: Any, output: Any) -> tuple[bool, Hashable]:
        """Apply one register call (see the class docstring)."""
        if name == "read":
            return output is UNKNOWN or output == state, state
        if name == "write":
            return True, input
        if name == "cas":
            expected, new = input
            if output is UNKNOWN:
                return True, new if state == expected else state
            if output:
                return state == expected, new
            return state != expected, state
        raise _unsupported(self, name)

    def is_read_only(self, name: str, input: Any, output: Any) -> bool:
        """Reads and failed compare-and-sets never change the value."""
        return name == "read" or (name == "cas" and output is False)

    def describe(self, operation: Operation) -> str:
        """Render a call as ``client 1: cas(1 -> 2) -> True``."""
        if operation.name == "cas":
            expected, new = operation.input
            return (
                f"client {operation.client}: cas({expected!r} -> {new!r}) -> {operation.output!r}"
            )
        return operation.describe()

    def describe_state(self, state: Any) -> str:
        """Render the register's value."""
        return f"value {state!r}"


class CounterModel:
    """A counter.

    - ``incr``: input the amount (``None`` means 1); output the new value.
    - ``read``: input ``None``; output the value.

    :param initial: the value before any increment.
    """

    def __init__(self, initial: int = 0) -> None:
        self.initial = initial

    def init(self) -> int:
        """The initial value."""
        return self.initial

    def step(self, state: int, name: str, input: Any, output: Any) -> tuple[bool, int]:
        """Apply one counter call (see the class docstring)."""
        if name == "incr":
            new = state + (1 if input is None else int(input))
            return output is UNKNOWN or output == new, new
        if name == "read":
            return output is UNKNOWN or output == state, state
        raise _unsupported(self, name)

    def is_read_only(self, name: str, input: Any, output: Any) -> bool:
        """Reads never change the value."""
        return name == "read"

    def describe(self, operation: Operation) -> str:
        """Render a call as ``client 0: incr(1) -> 5``."""
        return operation.describe()

    def describe_state(self, state: Any) -> str:
        """Render the counter's value."""
        return f"value {state!r}"


class SetModel:
    """A grow-only set.

    - ``add``: input the element; output ignored.
    - ``read``: input ``None``; output every element (any iterable; order is ignored).

    The state is an int with one bit per element (in order of first appearance), which keeps
    the checker's memory small: a frozenset per explored configuration would cost the whole
    set each time. Use one instance per check; it remembers the elements it has seen.
    """

    def __init__(self) -> None:
        self._bit_of: dict[Hashable, int] = {}
        self._elements: list[Hashable] = []
        self._read_masks: dict[int, tuple[object, int]] = {}

    def init(self) -> int:
        """The empty set."""
        return 0

    def step(self, state: int, name: str, input: Any, output: Any) -> tuple[bool, int]:
        """Apply one set call (see the class docstring)."""
        if name == "add":
            return True, state | self._bit(input)
        if name == "read":
            return output is UNKNOWN or self._mask(output) == state, state
        raise _unsupported(self, name)

    def _bit(self, element: Hashable) -> int:
        bit = self._bit_of.get(element)
        if bit is None:
            bit = self._bit_of[element] = 1 << len(self._elements)
            self._elements.append(element)
        return bit

    def _mask(self, elements: Iterable[Hashable]) -> int:
        cached = self._read_masks.get(id(elements))
        if cached is not None and cached[0] is elements:
            return cached[1]
        mask = 0
        for element in elements:
            mask |= self._bit(element)
        self._read_masks[id(elements)] = (elements, mask)
        return mask

    def is_read_only(self, name: str, input: Any, output: Any) -> bool:
        """Reads never change the set."""
        return name == "read"

    def written_token(self, operation: Operation) -> Hashable | None:
        """An add writes its element."""
        element: Hashable = operation.input
        return element if operation.name == "add" else None

    def shown_tokens(self, operation: Operation) -> Iterable[Hashable]:
        """A read shows every element it returned."""
        if operation.name != "read" or operation.output is UNKNOWN:
            return ()
        elements: Iterable[Hashable] = operation.output
        return elements

    def describe(self, operation: Operation) -> str:
        """Render a call, listing a read's elements in sorted order where possible."""
        if operation.name == "read" and operation.output is not UNKNOWN:
            return f"client {operation.client}: read() -> {_render_elements(operation.output)}"
        return operation.describe()

    def describe_state(self, state: Any) -> str:
        """Render the set's elements."""
        present = [e for index, e in enumerate(self._elements) if state >> index & 1]
        return f"set {_render_elements(present)}"


def _render_elements(elements: Iterable[Any]) -> str:
    items = list(elements)
    try:
        items.sort()
    except TypeError:
        items.sort(key=repr)
    return "{" + ", ".join(repr(item) for item in items) + "}"


class KeyValueModel:
    """A map from keys to values, checked one key at a time.

    - ``get``: input the key; output the value, or ``None`` if the key is absent.
    - ``put``: input ``(key, value)``; output ignored.
    - ``delete``: input the key; output ignored.

    A stored value of ``None`` is indistinguishable from an absent key. The state is a
    frozenset of ``(key, value)`` pairs; after :meth:`partition` it holds at most one pair.
    """

    def init(self) -> frozenset[tuple[Hashable, Hashable]]:
        """The empty map."""
        return frozenset()

    def step(
        self, state: frozenset[tuple[Hashable, Hashable]], name: str, input: Any, output: Any
    ) -> tuple[bool, frozenset[tuple[Hashable, Hashable]]]:
        """Apply one map call (see the class docstring)."""
        if name == "get":
            current = next((value for key, value in state if key == input), None)
            return output is UNKNOWN or output == current, state
        if name == "put":
            key, value = input
            others = frozenset(pair for pair in state if pair[0] != key)
            return True, others if value is None else others | {(key, value)}
        if name == "delete":
            return True, frozenset(pair for pair in state if pair[0] != input)
        raise _unsupported(self, name)

    def is_read_only(self, name: str, input: Any, output: Any) -> bool:
        """Gets never change the map."""
        return name == "get"

    def written_token(self, operation: Operation) -> Hashable | None:
        """A put of a value other than ``None`` writes ``(key, value)``."""
        if operation.name != "put" or operation.input[1] is None:
            return None
        token: Hashable = tuple(operation.input)
        return token

    def shown_tokens(self, operation: Operation) -> Iterable[Hashable]:
        """A get that found a value shows ``(key, value)``."""
        if operation.name != "get" or operation.output in (None, UNKNOWN):
            return ()
        return ((operation.input, operation.output),)

    def key_of(self, operation: Operation) -> Hashable:
        """The key an operation touches."""
        if operation.name == "put":
            key: Hashable = operation.input[0]
            return key
        if operation.name in ("get", "delete"):
            key = operation.input
            return key
        raise _unsupported(self, operation.name)

    def partition(self, history: Sequence[Operation]) -> list[list[Operation]]:
        """One sub-history per key: operations on different keys never affect each other."""
        by_key: dict[Hashable, list[Operation]] = {}
        for operation in history:
            by_key.setdefault(self.key_of(operation), []).append(operation)
        return list(by_key.values())

    def describe(self, operation: Operation) -> str:
        """Render a call as ``client 2: put('x', 3)``."""
        if operation.name == "put":
            key, value = operation.input
            return f"client {operation.client}: put({key!r}, {value!r})"
        if operation.name == "delete":
            return f"client {operation.client}: delete({operation.input!r})"
        return f"client {operation.client}: get({operation.input!r}) -> {operation.output!r}"

    def describe_state(self, state: Any) -> str:
        """Render the map as ``{'x': 3}``."""
        pairs = sorted(state, key=repr)
        return "{" + ", ".join(f"{key!r}: {value!r}" for key, value in pairs) + "}"
