"""Replicated classes and entry builders shared by the API tests."""

from __future__ import annotations

import itertools
from typing import Any

from replobj.command import Command, encode_batch, encode_command
from replobj.entry_context import current_entry
from replobj.raft.types import Entry, EntryKind
from replobj.replicated import query, replicated, spec_of


class InsufficientFundsError(Exception):
    """Raised by :class:`Account` commands; pickles like any plain exception."""


class TwoArgumentError(Exception):
    """An exception whose ``__init__`` needs two arguments: it does not unpickle."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a} and {b}")


@replicated
class Counter:
    """The issue's counter."""

    def __init__(self) -> None:
        self.value = 0

    def incr(self, n: int = 1) -> int:
        self.value += n
        return self.value

    def fail(self, message: str) -> None:
        self.value += 1000
        raise ValueError(message)

    def stamp(self) -> tuple[int, int, float]:
        info = current_entry()
        return info.index, info.term, info.timestamp

    def draw(self) -> list[int]:
        rng = current_entry().random()
        return [rng.randrange(1_000_000) for _ in range(3)]

    def bad_result(self) -> None:
        raise TwoArgumentError(1, 2)

    @query
    def get(self) -> int:
        return self.value


@replicated
class KV:
    """A key-value store."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value

    def call(self, key: str, fn: Any) -> Any:
        self.data[key] = fn(self.data.get(key))
        return self.data[key]

    @query
    def get(self, key: str) -> Any:
        return self.data.get(key)


@replicated(name="tests.OtherKV")
class OtherKV:
    """Same method names as :class:`KV`, another class name."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value


@replicated
class Account:
    """Keeps a derived cache out of its state with ``__getstate__``/``__setstate__``."""

    def __init__(self) -> None:
        self.balance = 0
        self.history: list[int] = []
        self.cache: dict[str, int] = {}

    def deposit(self, amount: int) -> int:
        self.balance += amount
        self.history.append(amount)
        return self.balance

    def withdraw(self, amount: int) -> int:
        if amount > self.balance:
            raise InsufficientFundsError(f"balance {self.balance} < {amount}")
        return self.deposit(-amount)

    def __getstate__(self) -> dict[str, Any]:
        return {"balance": self.balance, "history": list(self.history)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.balance = state["balance"]
        self.history = state["history"]
        self.cache = {"restored": 1}


@replicated
class Slotted:
    """A class with ``__slots__`` (and a private, name-mangled slot)."""

    __slots__ = ("__secret", "total")

    def __init__(self) -> None:
        self.total = 0

    def add(self, n: int) -> int:
        self.total += n
        self.__secret = n
        return self.total

    @query
    def secret(self) -> int | None:
        return getattr(self, "_Slotted__secret", None)


CLIENT_A = bytes(range(16))
CLIENT_B = bytes(range(16, 32))


class Log:
    """Builds consecutive entries (term 1 unless told) carrying commands."""

    def __init__(self) -> None:
        self._index = itertools.count(1)

    def command(self, *commands: Command, term: int = 1) -> Entry:
        payload = encode_command(commands[0]) if len(commands) == 1 else encode_batch(commands)
        return Entry(term, next(self._index), EntryKind.COMMAND, payload)

    def noop(self, term: int = 1) -> Entry:
        return Entry(term, next(self._index), EntryKind.NOOP)

    def raw(self, payload: bytes, term: int = 1) -> Entry:
        return Entry(term, next(self._index), EntryKind.COMMAND, payload)


def call(
    object_name: str,
    method: str,
    *args: Any,
    seq: int,
    client: bytes = CLIENT_A,
    cls: type = Counter,
    at: float = 0.0,
    lowest_pending: int = 0,
    **kwargs: Any,
) -> Command:
    """A command of ``client`` on ``object_name`` (a ``cls``) at leader time ``at``."""
    return Command(
        client,
        seq,
        object_name,
        spec_of(cls).class_name,
        method,
        args,
        kwargs,
        timestamp=at,
        lowest_pending=lowest_pending,
    )


@replicated
class Recorder:
    """Records every call it executes, with the entry index it came from."""

    def __init__(self) -> None:
        self.applied: list[tuple[Any, int]] = []

    def record(self, tag: Any) -> int:
        self.applied.append((tag, current_entry().index))
        return len(self.applied)
