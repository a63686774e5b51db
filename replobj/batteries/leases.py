"""Leases on leader time: the pure logic behind ``Lock``, ``Semaphore`` and ``LeaderElection``.

A :class:`LeaseTable` is a plain object that never reads a clock: every call takes ``now``
(the entry's leader-assigned timestamp) and, to grant a lease, ``index`` (the entry's log
index). The replicated types pass :func:`replobj.current_entry`'s values, so every replica
makes the same decision; tests pass numbers.

Fencing tokens are the log index of the entry that granted the lease, bumped past the last
token issued when several grants share one entry (calls submitted together do): so tokens
strictly increase over the table's whole life, across expiries and leader changes, and
are usually equal to the granting entry's index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import LockHeldError, NoPermitError, NotHolderError

__all__ = ["Lease", "LeaseTable"]


@dataclass(frozen=True, slots=True)
class Lease:
    """One owner's lease.

    :param owner: who holds it (an id the caller chose; unique per process).
    :param token: the fencing token, strictly greater than any token granted before.
    :param expires_at: leader time (seconds since the epoch, as the leaders' clocks read
        it) at which the lease runs out unless refreshed.
    """

    owner: str
    token: int
    expires_at: float

    def live_at(self, now: float) -> bool:
        """Whether the lease still holds at leader time ``now``."""
        return now < self.expires_at


class LeaseTable:
    """Up to ``permits`` leases, at most one per owner.

    :param what: how errors name the guarded thing (``"lock 'printer'"``).
    :param permits: how many owners may hold a lease at once (1 for a lock).
    :raises ValueError: if ``permits`` is below 1.
    """

    def __init__(self, what: str, permits: int) -> None:
        if not isinstance(permits, int) or isinstance(permits, bool) or permits < 1:
            raise ValueError(f"permits must be an int of at least 1, got {permits!r}")
        self.what = what
        self.permits = permits
        self.last_token = 0
        self._leases: dict[str, Lease] = {}

    def acquire(self, owner: str, ttl: float, now: float, index: int) -> Lease:
        """Grant ``owner`` a lease until ``now + ttl``, or renew the one it holds (keeping
        its token, so a retried acquire is harmless).

        :raises ~replobj.errors.LockHeldError: if a single permit is held by someone else.
        :raises ~replobj.errors.NoPermitError: if every one of several permits is held.
        :raises ValueError: if ``owner`` is empty or ``ttl`` is not a positive finite number.
        """
        _check_owner(owner)
        _check_ttl(ttl)
        self._expire(now)
        held = self._leases.get(owner)
        if held is not None:
            return self._put(Lease(owner, held.token, now + ttl))
        if len(self._leases) >= self.permits:
            raise self._busy()
        self.last_token = max(index, self.last_token + 1)
        return self._put(Lease(owner, self.last_token, now + ttl))

    def refresh(self, owner: str, token: int, ttl: float, now: float) -> Lease:
        """Extend ``owner``'s live lease to ``now + ttl``.

        :raises ~replobj.errors.NotHolderError: unless ``owner`` holds a live lease with
            ``token``.
        :raises ValueError: if ``ttl`` is not a positive finite number.
        """
        _check_ttl(ttl)
        held = self._held(owner, token, now)
        return self._put(Lease(owner, held.token, now + ttl))

    def release(self, owner: str, token: int, now: float) -> None:
        """End ``owner``'s live lease.

        :raises ~replobj.errors.NotHolderError: unless ``owner`` holds a live lease with
            ``token`` (an expired lease is not released: its holder learns it lost it).
        """
        self._held(owner, token, now)
        del self._leases[owner]

    def live(self, now: float) -> list[Lease]:
        """The leases that hold at ``now``, oldest grant first."""
        return [lease for lease in self._leases.values() if lease.live_at(now)]

    def recorded(self) -> list[Lease]:
        """Every lease not yet released or found expired by a later call (some may have
        run out since: compare ``expires_at`` with leader time)."""
        return list(self._leases.values())

    def _held(self, owner: str, token: int, now: float) -> Lease:
        held = self._leases.get(owner)
        if held is None or held.token != token or not held.live_at(now):
            raise NotHolderError(self.what, owner, token)
        return held

    def _put(self, lease: Lease) -> Lease:
        self._leases[lease.owner] = lease
        return lease

    def _expire(self, now: float) -> None:
        for owner in [o for o, lease in self._leases.items() if not lease.live_at(now)]:
            del self._leases[owner]

    def _busy(self) -> LockHeldError | NoPermitError:
        first = min(self._leases.values(), key=lambda lease: lease.expires_at)
        if self.permits == 1:
            return LockHeldError(self.what, first.owner, first.expires_at)
        return NoPermitError(self.what, self.permits, first.expires_at)


def _check_owner(owner: str) -> None:
    if not isinstance(owner, str) or not owner:
        raise ValueError(f"owner must be a non-empty str (unique per process), got {owner!r}")


def _check_ttl(ttl: float) -> None:
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl < math.inf:
        raise ValueError(f"ttl must be a positive finite number of seconds, got {ttl!r}")
