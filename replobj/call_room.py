"""Backpressure: a bound on the calls one node has in flight.

Every command a node's callers make is in flight from the moment it is encoded until its
caller has its outcome: it holds a ticket, a payload in the leader's queues and a place in
the client session. :class:`CallRoom` bounds how many there are at once
(``Node(max_pending_calls=...)``), so a flood of callers costs the node a bounded amount of
memory: past the bound a caller waits for room, in arrival order, or is refused at once
if it asked not to wait.

A batch (``proxy.method.many(...)``) takes as many places as it has commands, all at
once; a batch larger than the bound runs when nothing else is in flight, so it is never
refused for its size alone. Linearizable and local reads take no place: they hold no
payload and share one round per burst.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import anyio

__all__ = ["CallRoom"]


class _Turn:
    """One caller waiting for room."""

    __slots__ = ("granted", "wanted", "woken")

    def __init__(self, wanted: int) -> None:
        self.wanted = wanted
        self.granted = False
        self.woken = anyio.Event()


class CallRoom:
    """Room for at most ``limit`` calls in flight; callers past it wait their turn.

    The node counts what is in flight (its set of pending sequence numbers); this object
    holds only the bound, the queue of waiting callers and the places granted to callers
    that have not resumed yet (so that a caller arriving meanwhile cannot take them).

    :param limit: the most calls in flight at once (at least 1).
    """

    __slots__ = ("_queue", "_reserved", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._queue: deque[_Turn] = deque()
        self._reserved = 0

    @property
    def waiting(self) -> int:
        """How many callers wait for room now."""
        return len(self._queue)

    def has_room(self, pending: int, wanted: int) -> bool:
        """Whether ``wanted`` calls may start now, with ``pending`` in flight: nobody
        waits before them, and they fit (or nothing at all is in flight)."""
        if self._queue:
            return False
        used = pending + self._reserved
        return used + wanted <= self.limit or used == 0

    async def wait(self, pending: Callable[[], int], wanted: int, timeout: float) -> bool:
        """Wait until ``wanted`` places are granted to this caller, in arrival order;
        ``False`` if ``timeout`` seconds passed first. On ``True`` the caller must put its
        calls in flight before it next yields (the places are its own until then).

        :param pending: how many calls are in flight now (read when others could go).
        """
        turn = _Turn(wanted)
        self._queue.append(turn)
        proceeding = False
        try:
            with anyio.move_on_after(timeout):
                await turn.woken.wait()
            proceeding = turn.granted
            return proceeding
        finally:
            if turn.granted:
                self._reserved -= wanted
            else:
                self._queue.remove(turn)
            if not proceeding:  # timed out or cancelled: the next in line may fit now
                self.wake(pending())

    def wake(self, pending: int) -> None:
        """Grant places to waiting callers, first come first served, while they fit
        (``pending`` calls are in flight). Call whenever a call leaves flight."""
        queue = self._queue
        while queue:
            turn = queue[0]
            used = pending + self._reserved
            if used + turn.wanted > self.limit and used != 0:
                return
            queue.popleft()
            turn.granted = True
            self._reserved += turn.wanted
            turn.woken.set()
