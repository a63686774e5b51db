"""``Semaphore``: up to ``permits`` owners at once, each with a lease on leader time and a
fencing token of its own (see :mod:`replobj.batteries.lock` for why tokens matter)."""

from __future__ import annotations

from ..entry_context import current_entry
from ..replicated import query, replicated
from .leases import Lease, LeaseTable

__all__ = ["Semaphore"]


@replicated(name="replobj.batteries.Semaphore")
class Semaphore:
    """A counting semaphore whose permits are leases.

    :param permits: how many owners may hold a permit at once; attach the same number on
        every member.
    :param name: how error messages name the semaphore.
    :raises ValueError: if ``permits`` is below 1.
    """

    def __init__(self, permits: int, name: str = "the semaphore") -> None:
        self._leases = LeaseTable(name, permits=permits)

    def acquire(self, owner: str, ttl: float) -> int:
        """Take a permit for ``ttl`` seconds of leader time (or extend the one ``owner``
        holds, keeping its token).

        :returns: this permit's fencing token, greater than every token granted before.
        :raises ~replobj.errors.NoPermitError: if every permit is held (the error says when
            the first lease runs out). A one-permit semaphore raises
            :class:`~replobj.errors.LockHeldError` instead, like :class:`Lock`.
        :raises ValueError: if ``owner`` is empty or ``ttl`` is not positive and finite.
        """
        entry = current_entry()
        return self._leases.acquire(owner, ttl, entry.timestamp, entry.index).token

    def refresh(self, owner: str, token: int, ttl: float) -> float:
        """Extend ``owner``'s permit to ``ttl`` seconds from now; returns the new expiry.

        :raises ~replobj.errors.NotHolderError: unless ``owner`` holds a live permit with
            ``token``.
        """
        return self._leases.refresh(owner, token, ttl, current_entry().timestamp).expires_at

    def release(self, owner: str, token: int) -> None:
        """Give ``owner``'s permit back.

        :raises ~replobj.errors.NotHolderError: unless ``owner`` holds a live permit with
            ``token``.
        """
        self._leases.release(owner, token, current_entry().timestamp)

    def available_now(self) -> int:
        """How many permits are free at this command's leader time (a command: only
        commands know leader time)."""
        return self._leases.permits - len(self._leases.live(current_entry().timestamp))

    @query
    def holders(self) -> list[Lease]:
        """The permits granted and not released, oldest first; some may have run out since
        (compare ``expires_at`` with leader time)."""
        return self._leases.recorded()

    @query
    def permits(self) -> int:
        """How many permits the semaphore has."""
        return self._leases.permits
