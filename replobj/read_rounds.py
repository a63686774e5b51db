"""Linearizable reads in rounds: the reads that arrive between two drains of the core
share one ReadIndex request, one waiter list and one deadline.

A read may only join a request that the core has not registered yet: the core takes the
read index (its commit index) when it registers the request and confirms leadership
with a heartbeat round started after that (thesis §6.4), so both happen after every
joined read arrived. The runtime therefore hands the open round to the core at its next
drain (:meth:`ReadRounds.flush`), just before it takes the core's actions; reads arriving
later open the next round. Per read this costs one waiter on a shared flag: no request,
no action and no cancel scope of its own.
"""

from __future__ import annotations

import time

from . import errors
from .raft.node import RaftNode
from .raft.types import LogIndex, Refusal, RefusalReason, Role
from .waiting import Pending

__all__ = ["ReadRound", "ReadRounds"]


class ReadRound(Pending[LogIndex]):
    """The read index of one ReadIndex request, shared by every read that joined it.

    It fails with :class:`~replobj.errors.ReadFailedError` if the leader could not
    confirm it or nothing came by :attr:`deadline` (a lost forwarded request): its readers
    then start another round, so they need no cancel scope of their own.
    """

    __slots__ = ("deadline",)

    def __init__(self, deadline: float) -> None:
        super().__init__()
        self.deadline = deadline
        """``time.monotonic()`` after which the round fails (outcome unknown: retry)."""


class ReadRounds:
    """The open round (not yet handed to the core) and the rounds awaiting its answer.

    :param raft: the core the rounds are registered with.
    :param attempt: seconds a round may wait for the core's answer before it fails.
    """

    __slots__ = ("_attempt", "_closed", "_open", "_raft", "_sent")

    def __init__(self, raft: RaftNode, attempt: float) -> None:
        self._raft = raft
        self._attempt = attempt
        self._open: ReadRound | None = None
        self._sent: dict[int, ReadRound] = {}
        """Rounds registered with the core by request id, in deadline order."""
        self._closed: errors.NodeStoppedError | None = None

    def join(self) -> tuple[ReadRound, bool]:
        """The open round, and whether it was opened by this call (the driver must run).

        :raises ~replobj.errors.NoLeaderError: if no leader is known (as the core would
            refuse the request).
        :raises ~replobj.errors.NodeStoppedError: once :meth:`close` was called.
        """
        if self._closed is not None:
            raise self._closed
        current = self._open
        if current is not None:
            return current, False
        raft = self._raft
        role = raft.role
        if role is not Role.LEADER and (role is not Role.FOLLOWER or raft.leader is None):
            raise errors.error_for_refusal(
                Refusal(RefusalReason.NO_LEADER, "no leader is known; retry shortly")
            )
        current = self._open = ReadRound(time.monotonic() + self._attempt)
        return current, True

    def flush(self, request_id: int) -> None:
        """Register the open round with the core as ``request_id`` (the drain's first step)."""
        current = self._open
        if current is None:
            return
        self._open = None
        refusal = self._raft.read_index(request_id)
        if refusal is not None:
            current.fail(errors.ReadFailedError(f"read not started: {refusal.message}"))
        else:
            self._sent[request_id] = current

    def ready(self, request_id: int, index: LogIndex) -> None:
        """The core confirmed ``request_id`` with read index ``index``."""
        current = self._sent.pop(request_id, None)
        if current is not None:
            current.set(index)

    def failed(self, request_id: int, reason: str) -> None:
        """The core could not confirm ``request_id``."""
        current = self._sent.pop(request_id, None)
        if current is not None:
            current.fail(errors.ReadFailedError(f"read not confirmed: {reason}"))

    def expire(self, now: float) -> None:
        """Fail the rounds past their deadline (``time.monotonic()`` seconds)."""
        current = self._open
        if current is not None and current.deadline <= now:
            self._open = None
            current.fail(errors.ReadFailedError("read not started in time"))
        sent = self._sent
        while sent:
            request_id = next(iter(sent))
            if sent[request_id].deadline > now:
                break
            sent.pop(request_id).fail(errors.ReadFailedError("read not confirmed in time"))

    def close(self) -> None:
        """The runtime stopped: fail every round with
        :class:`~replobj.errors.NodeStoppedError` (nothing else would end them: their
        deadlines are the runtime's to enforce) and refuse new reads."""
        error = self._closed = errors.NodeStoppedError(
            f"node {self._raft.id!r} stopped while a linearizable read waited; "
            "retry it on a running node"
        )
        rounds = [*self._sent.values(), *([self._open] if self._open is not None else [])]
        self._sent.clear()
        self._open = None
        for current in rounds:
            current.fail(error)

    @property
    def has_open(self) -> bool:
        """Whether reads wait for the next drain to hand their round to the core."""
        return self._open is not None

    def __len__(self) -> int:
        """Rounds not answered yet (the open one included)."""
        return len(self._sent) + (self._open is not None)
