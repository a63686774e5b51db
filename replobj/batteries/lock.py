"""``Lock``: a replicated mutex with a time-to-live on leader time and a fencing token.

A lease, not a mutex you can trust blindly: a holder that pauses (GC, swap, a partition)
may keep working after its lease ran out. The fencing token closes that gap: the holder
passes it to the resource it protects, and the resource refuses any token lower than the
highest it has seen (:class:`Fence`), so a stale holder cannot overwrite the work of the
next one. See ``docs/batteries.md``.
"""

from __future__ import annotations

from ..entry_context import current_entry
from ..replicated import query, replicated
from .leases import Lease, LeaseTable

__all__ = ["Fence", "Lock"]


@replicated(name="replobj.batteries.Lock")
class Lock:
    """One lock, held by at most one owner until released or until its lease runs out.

    Expiry is judged at the leader-assigned timestamp of each command
    (:func:`replobj.current_entry`), never a replica's clock, so every replica agrees.

    :param name: how error messages name the lock (``"lock 'printer'"``).
    """

    def __init__(self, name: str = "the lock") -> None:
        self._leases = LeaseTable(name, permits=1)

    def acquire(self, owner: str, ttl: float) -> int:
        """Take the lock for ``ttl`` seconds of leader time; if ``owner`` already holds
        it, extend the lease and keep the token (so retrying an acquire whose answer was
        lost is safe).

        :param owner: a unique id of the caller (e.g. ``f"{host}:{pid}:{uuid4()}"``).
        :returns: the fencing token: strictly greater than every token this lock granted
            before (the log index of the granting entry, bumped if needed).
        :raises ~replobj.errors.LockHeldError: if another owner holds it (``owner`` and
            ``expires_at`` on the error).
        :raises ValueError: if ``owner`` is empty or ``ttl`` is not positive and finite.
        """
        entry = current_entry()
        return self._leases.acquire(owner, ttl, entry.timestamp, entry.index).token

    def refresh(self, owner: str, token: int, ttl: float) -> float:
        """Extend the lease to ``ttl`` seconds from now (leader time).

        :returns: the new expiry, in leader time.
        :raises ~replobj.errors.NotHolderError: unless ``owner`` holds the lock with
            ``token`` and the lease has not run out.
        """
        return self._leases.refresh(owner, token, ttl, current_entry().timestamp).expires_at

    def release(self, owner: str, token: int) -> None:
        """Give the lock back.

        :raises ~replobj.errors.NotHolderError: unless ``owner`` holds the lock with
            ``token`` and the lease has not run out (then someone else may have taken it,
            and the caller must assume its work was fenced off).
        """
        self._leases.release(owner, token, current_entry().timestamp)

    def holder_now(self) -> Lease | None:
        """The live lease at this command's leader time, or ``None`` if the lock is free.

        A command (it goes through the log) because only commands know leader time; use
        :meth:`holder` for a read that never enters the log.
        """
        live = self._leases.live(current_entry().timestamp)
        return live[0] if live else None

    @query
    def holder(self) -> Lease | None:
        """The last lease granted and not released, or ``None``; it may have run out since
        (a query knows no leader time: compare ``expires_at``, or call :meth:`holder_now`)."""
        recorded = self._leases.recorded()
        return recorded[0] if recorded else None

    @query
    def last_token(self) -> int:
        """The highest fencing token granted so far (0 before the first)."""
        return self._leases.last_token


class Fence:
    """What a protected resource keeps to refuse stale lock holders (not replicated).

    The resource remembers the highest token it has accepted and refuses lower ones: a
    holder whose lease ran out while it was paused carries an older token than whoever
    took the lock next, so its late writes are refused. Keep the fence with the resource
    (in the same transaction as the write it guards), not with the client.
    """

    def __init__(self) -> None:
        self.highest = 0

    def admit(self, token: int) -> bool:
        """Whether a request carrying ``token`` may proceed (and remember it if so)."""
        if token < self.highest:
            return False
        self.highest = token
        return True
