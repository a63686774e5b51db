"""Client sessions: each command is applied at most once (Raft thesis §6.3).

A client (a proxy owner) numbers its calls 1, 2, 3, ... and sends with each call the
lowest number whose outcome it has not received yet (``Command.lowest_pending``). Per
client the table keeps the outcomes of the calls at or above that number, so:

- a retry of a kept call returns the kept outcome without running the method again;
- a call below ``lowest_pending`` was already acknowledged by the client: it is not
  applied and gets :class:`~replobj.errors.StaleCommandError` (only a stray duplicate
  can arrive so late);
- several calls of one client may be in flight at once and may apply in any order.

Sessions expire by *leader time*: the largest timestamp of the commands applied so
far. A session idle for more than ``ttl`` seconds of leader time is dropped when a
later command is applied, so every replica drops the same sessions at the same entry.
A retry is therefore recognised as long as it arrives within ``ttl`` of its client's
last command; ``ttl`` must be equal on every node.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import cloudpickle  # type: ignore[import-untyped]

from .command import CommandFields, CommandOutcome
from .errors import StaleCommandError, UnpicklableStateError

__all__ = ["DEFAULT_SESSION_TTL", "SessionTable"]

DEFAULT_SESSION_TTL = 3600.0
"""Seconds of leader time after which an idle client's session is forgotten."""


@dataclass(slots=True)
class _Session:
    lowest_pending: int
    last_active: float
    outcomes: dict[int, CommandOutcome]


class SessionTable:
    """The per-client sequence numbers and kept outcomes.

    :param ttl: seconds of leader time a session survives without commands.
    :raises ValueError: if ``ttl`` is not positive.
    """

    __slots__ = ("_now", "_sessions", "_ttl")

    def __init__(self, ttl: float = DEFAULT_SESSION_TTL) -> None:
        if not ttl > 0:
            raise ValueError(f"session ttl must be positive, got {ttl!r}")
        self._ttl = float(ttl)
        self._now = 0.0
        self._sessions: OrderedDict[bytes, _Session] = OrderedDict()

    @property
    def ttl(self) -> float:
        """Seconds of leader time an idle session survives."""
        return self._ttl

    @property
    def now(self) -> float:
        """Leader time: the largest command timestamp applied so far."""
        return self._now

    def __len__(self) -> int:
        return len(self._sessions)

    def clients(self) -> frozenset[bytes]:
        """The client ids that currently have a session."""
        return frozenset(self._sessions)

    def begin(self, fields: CommandFields, timestamp: float) -> CommandOutcome | None:
        """Account for a command before it runs; say whether it must run.

        Advances leader time, expires idle sessions and opens or touches the client's.

        :param fields: the command (:meth:`Command.fields <replobj.command.Command.fields>`).
        :param timestamp: its leader timestamp.
        :returns: ``None`` if the method must run (then call :meth:`record`), else the
            outcome to report without running it (kept outcome, or a stale error).
        """
        if timestamp > self._now:
            self._now = timestamp
            self._expire()
        client_id, seq, lowest_pending = fields[0], fields[1], fields[2]
        session = self._sessions.get(client_id)
        if session is None:
            session = _Session(lowest_pending, self._now, {})
            self._sessions[client_id] = session
        else:
            if session.last_active != self._now:
                # Sessions stay ordered by last activity; one already touched at the
                # current leader time is in order wherever it is.
                session.last_active = self._now
                self._sessions.move_to_end(client_id)
            if lowest_pending > session.lowest_pending:
                if lowest_pending == session.lowest_pending + 1:
                    session.outcomes.pop(session.lowest_pending, None)
                    session.lowest_pending = lowest_pending
                else:
                    _forget_acknowledged(session, lowest_pending)
        if seq < session.lowest_pending:
            error = StaleCommandError(
                f"call {seq} of client {client_id.hex()} ({fields[3]}.{fields[5]}) was already "
                f"acknowledged (lowest pending call is {session.lowest_pending}); it was not "
                "applied again"
            )
            return CommandOutcome(client_id, seq, error=error, duplicate=True)
        kept = session.outcomes.get(seq)
        return None if kept is None else kept.as_duplicate()

    def record(self, fields: CommandFields, outcome: CommandOutcome) -> None:
        """Keep ``outcome`` of a command (after :meth:`begin` returned ``None``)."""
        self._sessions[fields[0]].outcomes[fields[1]] = outcome

    def _expire(self) -> None:
        cutoff = self._now - self._ttl
        while self._sessions:
            client_id, session = next(iter(self._sessions.items()))
            if session.last_active >= cutoff:
                return
            del self._sessions[client_id]

    def export(self) -> tuple[float, list[tuple[bytes, int, float, list[tuple[int, bytes]]]]]:
        """The table as plain data for a snapshot; outcomes are pickled one by one.

        A kept outcome that cannot be pickled and unpickled (e.g. an unpicklable return
        value, or an exception whose ``__init__`` needs extra arguments) is replaced by
        :class:`~replobj.errors.UnpicklableStateError`: a retry of that call after a
        restore reports this error instead of the original outcome.
        """
        sessions = [
            (
                client_id,
                s.lowest_pending,
                s.last_active,
                [(seq, _portable(o)) for seq, o in s.outcomes.items() if seq >= s.lowest_pending],
            )
            for client_id, s in self._sessions.items()
        ]
        return self._now, sessions

    @classmethod
    def from_export(cls, data: Any, ttl: float) -> SessionTable:
        """Rebuild a table from :meth:`export` output.

        :raises ValueError: if ``data`` does not have the exported shape.
        """
        now, sessions = data
        table = cls(ttl)
        table._now = float(now)
        for client_id, lowest_pending, last_active, outcomes in sessions:
            if not isinstance(client_id, bytes) or not isinstance(lowest_pending, int):
                raise ValueError("malformed session entry")
            kept: dict[int, CommandOutcome] = {}
            for seq, blob in outcomes:
                value, error = pickle.loads(blob)
                if error is not None and not isinstance(error, Exception):
                    raise ValueError("malformed kept outcome")
                kept[int(seq)] = CommandOutcome(client_id, int(seq), value, error)
            table._sessions[client_id] = _Session(lowest_pending, float(last_active), kept)
        return table


def _forget_acknowledged(session: _Session, lowest_pending: int) -> None:
    """Raise ``session.lowest_pending`` and drop the kept outcomes below it.

    Every kept outcome is at or above the old ``lowest_pending`` (a call below it is
    never recorded), so only the sequence numbers in between need looking at.
    """
    outcomes = session.outcomes
    below = range(session.lowest_pending, lowest_pending)
    session.lowest_pending = lowest_pending
    if len(below) <= len(outcomes):
        for seq in below:
            outcomes.pop(seq, None)
    else:
        session.outcomes = {seq: o for seq, o in outcomes.items() if seq >= lowest_pending}


def _portable(outcome: CommandOutcome) -> bytes:
    pair = (outcome.value, outcome.error)
    try:
        try:
            blob = pickle.dumps(pair, protocol=5)
        except Exception:
            blob = cloudpickle.dumps(pair, protocol=5)
        pickle.loads(blob)
        return bytes(blob)
    except Exception as exc:
        error = UnpicklableStateError(
            f"the outcome of call {outcome.seq} of client {outcome.client_id.hex()} could not "
            f"be kept in a snapshot ({type(exc).__name__}: {exc}); return picklable values "
            "from commands and raise exceptions that pickle"
        )
        return pickle.dumps((None, error), protocol=5)
