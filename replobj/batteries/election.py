"""``LeaderElection``: one leader at a time among application candidates, on a lease.

This is leadership of *your* application (which worker runs the scheduler), not the Raft
leader. A candidate campaigns with a TTL and keeps campaigning (or refreshes) before it
runs out; the token it wins is a fencing token, so work a deposed leader still sends can be
refused by whoever receives it (see :class:`replobj.batteries.Fence`).
"""

from __future__ import annotations

from ..entry_context import current_entry
from ..replicated import query, replicated
from .leases import Lease, LeaseTable

__all__ = ["LeaderElection"]


@replicated(name="replobj.batteries.LeaderElection")
class LeaderElection:
    """At most one leader, elected for a TTL on leader time.

    :param name: how error messages name the election.
    """

    def __init__(self, name: str = "the leadership") -> None:
        self._leases = LeaseTable(name, permits=1)

    def campaign(self, candidate: str, ttl: float) -> int:
        """Become leader for ``ttl`` seconds of leader time, or stay leader (same token).

        :returns: the fencing token of this leadership, greater than any earlier one.
        :raises ~replobj.errors.LockHeldError: if another candidate leads (``owner`` and
            ``expires_at`` on the error).
        :raises ValueError: if ``candidate`` is empty or ``ttl`` is not positive and finite.
        """
        entry = current_entry()
        return self._leases.acquire(candidate, ttl, entry.timestamp, entry.index).token

    def refresh(self, candidate: str, token: int, ttl: float) -> float:
        """Extend the leadership to ``ttl`` seconds from now; returns the new expiry.

        :raises ~replobj.errors.NotHolderError: unless ``candidate`` leads with ``token``.
        """
        return self._leases.refresh(candidate, token, ttl, current_entry().timestamp).expires_at

    def resign(self, candidate: str, token: int) -> None:
        """Step down, so another candidate may win at once.

        :raises ~replobj.errors.NotHolderError: unless ``candidate`` leads with ``token``.
        """
        self._leases.release(candidate, token, current_entry().timestamp)

    def leader_now(self) -> Lease | None:
        """The leadership that holds at this command's leader time, or ``None``."""
        live = self._leases.live(current_entry().timestamp)
        return live[0] if live else None

    @query
    def leader(self) -> Lease | None:
        """The last leadership won and not resigned, or ``None``; it may have run out since
        (compare ``expires_at``, or call :meth:`leader_now`)."""
        recorded = self._leases.recorded()
        return recorded[0] if recorded else None
