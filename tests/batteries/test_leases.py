"""Leases, locks, semaphores and elections as plain objects, with entries given by hand."""

from __future__ import annotations

import math
from typing import Any

import pytest

from replobj import errors
from replobj.batteries import Fence, LeaderElection, Lease, LeaseTable, Lock, Semaphore
from replobj.entry_context import run_in_entry


class Entries:
    """Applies commands as if from consecutive log entries at chosen leader times."""

    def __init__(self) -> None:
        self.index = 0

    def at(self, now: float, method: Any, *args: Any, position: int = 0) -> Any:
        """Run ``method(*args)`` in the next entry (or the same one, for ``position`` > 0)."""
        if position == 0:
            self.index += 1
        return run_in_entry((self.index, 1, now, position), method, args, {})


def test_tokens_are_entry_indexes_and_strictly_increase() -> None:
    lock = Lock()
    log = Entries()
    first = log.at(0.0, lock.acquire, "alice", 10.0)
    assert first == 1
    log.at(1.0, lock.release, "alice", first)
    log.index = 40
    second = log.at(2.0, lock.acquire, "bob", 1.0)
    assert second == 41
    third = log.at(5.0, lock.acquire, "carol", 1.0)  # bob's lease ran out at 3.0
    assert third == 42
    assert lock.last_token() == 42


def test_grants_sharing_one_entry_still_get_increasing_tokens() -> None:
    lock = Lock()
    log = Entries()
    log.index = 7
    first = log.at(0.0, lock.acquire, "alice", 1.0)
    log.at(0.0, lock.release, "alice", first, position=1)
    second = log.at(0.0, lock.acquire, "bob", 1.0, position=2)
    assert (first, second) == (8, 9)
    assert log.at(0.5, lock.acquire, "bob", 1.0) == 9  # bob renews: same token
    log.at(3.0, lock.acquire, "carol", 1.0)
    assert lock.last_token() == 10  # entry 10, not a token below the last one


def test_a_held_lock_says_who_holds_it_until_when() -> None:
    lock = Lock("lock 'printer'")
    log = Entries()
    log.at(100.0, lock.acquire, "alice", 30.0)
    with pytest.raises(errors.LockHeldError) as raised:
        log.at(129.9, lock.acquire, "bob", 1.0)
    assert (raised.value.owner, raised.value.expires_at) == ("alice", 130.0)
    assert "lock 'printer' is held by 'alice'" in str(raised.value)
    assert log.at(130.0, lock.acquire, "bob", 1.0) == 3  # expiry is exclusive


def test_only_the_holder_with_its_token_may_release_or_refresh() -> None:
    lock = Lock()
    log = Entries()
    token = log.at(0.0, lock.acquire, "alice", 10.0)
    for owner, wrong in (("bob", token), ("alice", token + 1)):
        with pytest.raises(errors.NotHolderError):
            log.at(1.0, lock.release, owner, wrong)
        with pytest.raises(errors.NotHolderError):
            log.at(1.0, lock.refresh, owner, wrong, 5.0)
    assert lock.holder() == Lease("alice", token, 10.0)
    assert log.at(2.0, lock.refresh, "alice", token, 20.0) == 22.0
    log.at(3.0, lock.release, "alice", token)
    assert lock.holder() is None
    with pytest.raises(errors.NotHolderError):
        log.at(4.0, lock.release, "alice", token)


def test_an_expired_lease_cannot_be_refreshed_or_released() -> None:
    lock = Lock()
    log = Entries()
    token = log.at(0.0, lock.acquire, "alice", 1.0)
    with pytest.raises(errors.NotHolderError):
        log.at(1.0, lock.refresh, "alice", token, 1.0)
    with pytest.raises(errors.NotHolderError):
        log.at(1.5, lock.release, "alice", token)
    assert lock.holder() == Lease("alice", token, 1.0)  # recorded; a query knows no time
    assert log.at(1.5, lock.holder_now) is None


@pytest.mark.parametrize("ttl", [0, -1.0, math.inf, math.nan, True, "5"])
def test_a_bad_ttl_is_refused_and_changes_nothing(ttl: Any) -> None:
    lock = Lock()
    with pytest.raises(ValueError, match="ttl must be"):
        Entries().at(0.0, lock.acquire, "alice", ttl)
    assert lock.holder() is None
    assert lock.last_token() == 0


def test_an_empty_owner_is_refused() -> None:
    with pytest.raises(ValueError, match="owner must be"):
        Entries().at(0.0, Lock().acquire, "", 1.0)


def test_semaphore_grants_each_permit_its_own_token() -> None:
    pool = Semaphore(2, "pool")
    log = Entries()
    a = log.at(0.0, pool.acquire, "a", 10.0)
    b = log.at(1.0, pool.acquire, "b", 2.0)
    with pytest.raises(errors.NoPermitError) as raised:
        log.at(2.0, pool.acquire, "c", 1.0)
    assert (raised.value.permits, raised.value.expires_at) == (2, 3.0)
    assert log.at(2.0, pool.available_now) == 0
    c = log.at(3.0, pool.acquire, "c", 1.0)  # b ran out
    assert a < b < c
    assert [lease.owner for lease in pool.holders()] == ["a", "c"]
    with pytest.raises(errors.NotHolderError):
        log.at(3.5, pool.release, "b", b)
    log.at(3.5, pool.release, "a", a)
    assert log.at(3.5, pool.available_now) == 1
    assert pool.permits() == 2


def test_a_semaphore_needs_a_permit() -> None:
    with pytest.raises(ValueError, match="permits"):
        Semaphore(0)
    with pytest.raises(ValueError, match="permits"):
        LeaseTable("x", permits=True)


def test_leader_election_hands_over_on_resign_and_on_expiry() -> None:
    election = LeaderElection()
    log = Entries()
    first = log.at(0.0, election.campaign, "w1", 5.0)
    assert log.at(1.0, election.campaign, "w1", 5.0) == first  # staying leader
    with pytest.raises(errors.LockHeldError):
        log.at(2.0, election.campaign, "w2", 5.0)
    log.at(3.0, election.resign, "w1", first)
    second = log.at(3.0, election.campaign, "w2", 1.0)
    assert log.at(3.5, election.refresh, "w2", second, 1.0) == 4.5
    third = log.at(4.5, election.campaign, "w1", 1.0)
    assert first < second < third
    assert election.leader() == Lease("w1", third, 5.5)
    assert log.at(5.5, election.leader_now) is None


def test_a_fence_refuses_tokens_older_than_the_newest_seen() -> None:
    fence = Fence()
    assert fence.admit(5)
    assert fence.admit(5)
    assert fence.admit(9)
    assert not fence.admit(5)
    assert fence.highest == 9
