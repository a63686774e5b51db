"""``current_entry()``: the log entry a command is being applied from.

Commands must be deterministic: every replica applies the same entries in the same
order and must reach the same state. Instead of reading the local clock a command
asks :func:`current_entry` for the entry's index, term and the timestamp the leader
assigned when it proposed the command, and draws random numbers from
:meth:`EntryInfo.random`; these are identical on every replica.

Calls submitted together travel in one entry: its commands share the index, term and
timestamp, and ``position`` (0, 1, ...) tells them apart, so ``(index, position)``
identifies a command and orders commands as they were applied.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from .errors import NoCurrentEntryError
from .raft.types import LogIndex, Term

__all__ = [
    "EntryInfo",
    "current_entry",
    "enter_entry",
    "leave_entry",
    "run_in_entry",
    "run_outside_entry",
]


@dataclass(frozen=True, slots=True)
class EntryInfo:
    """The entry a command is applied from.

    :param index: the entry's log index (increasing; the commands of one entry share
        it, so use ``(index, position)`` as a command's id).
    :param term: the term of the leader that proposed it.
    :param timestamp: seconds since the epoch on the proposing leader's clock; never
        decreases from one command to the next (the state machine clamps it).
    :param position: the command's place among the commands of its entry, from 0.
    """

    index: LogIndex
    term: Term
    timestamp: float
    position: int = 0

    def random(self) -> random.Random:
        """A random generator seeded from this command's entry and position: the same
        numbers on every replica, different for every command.

        Use it instead of :mod:`random` inside commands (shuffles, tie-breaks, ids). Each
        call returns a fresh generator with the same seed, so draw everything a command
        needs from one. Not for secrets: anyone who sees the entry can predict it.
        """
        seed = f"replobj-entry:{self.term}:{self.index}:{self.timestamp!r}"
        return random.Random(f"{seed}:{self.position}" if self.position else seed)


_Position = Sequence[Any]
"""(index, term, timestamp, position); empty once its entry is over."""
_current: ContextVar[_Position | None] = ContextVar("replobj_current_entry", default=None)


def current_entry() -> EntryInfo:
    """The entry the running command is applied from.

    :raises ~replobj.errors.NoCurrentEntryError: outside a command (in a query, or in
        code that is not being applied by a node).
    """
    info = _current.get()
    if not info:
        raise NoCurrentEntryError(
            "current_entry() is only available inside a command while a node applies it; "
            "queries and code outside commands must not depend on it"
        )
    return EntryInfo(*info)


def run_in_entry(
    where: _Position | None,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """``fn(*args, **kwargs)`` with ``where`` (index, term, timestamp, position) as the
    :func:`current_entry`; ``None`` hides any outer entry. This is the apply hot path:
    the :class:`EntryInfo` is only built if the command asks for it.
    """
    token = _current.set(where)
    try:
        return fn(*args, **kwargs)
    finally:
        _current.reset(token)


def enter_entry(index: LogIndex, term: Term) -> tuple[list[Any], Token[_Position | None]]:
    """Make the entry being applied current, for all its commands at once (the apply hot
    path: one context-variable change per entry, not two per command).

    :returns: the position list ``[index, term, timestamp, position]``, whose last two
        items the state machine sets before running each command, and the token for
        :func:`leave_entry`.
    """
    where: list[Any] = [index, term, 0.0, 0]
    return where, _current.set(where)


def leave_entry(where: list[Any], token: Token[_Position | None]) -> None:
    """End :func:`enter_entry`: the outer entry (none) is current again. ``where`` is
    emptied, so a context copied during a command (a callback it scheduled) finds no
    current entry afterwards rather than another command's position."""
    where.clear()
    _current.reset(token)


def run_outside_entry(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``fn(*args, **kwargs)`` with no current entry (a query): :func:`run_in_entry` with
    ``None``, without its cost in the usual case where no entry is current (a local read
    from a task: entries are current only while a command applies)."""
    if _current.get() is None:
        return fn(*args, **kwargs)
    return run_in_entry(None, fn, args, kwargs)
