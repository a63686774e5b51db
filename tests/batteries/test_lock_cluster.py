"""Lock, Semaphore and LeaderElection on a real 3-node cluster, across a leader change."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from replobj import errors
from replobj.batteries import Fence, LeaderElection, Lease, Lock, Semaphore

from .helpers import BatteryCluster

pytestmark = pytest.mark.anyio

FACTORIES = {
    "lock": lambda: Lock("lock 'printer'"),
    "pool": lambda: Semaphore(2, "pool"),
    "election": LeaderElection,
}


async def acquire_when_free(lock: object, owner: str, ttl: float) -> tuple[int, float]:
    """Retry ``acquire`` until the lease held by someone else runs out (deadline 10 s);
    returns the token and the last expiry the refusals named."""
    expired_at = 0.0
    with anyio.fail_after(10):
        while True:
            try:
                token: int = await lock.acquire(owner, ttl)  # type: ignore[attr-defined]
            except errors.LockHeldError as held:
                expired_at = held.expires_at
                await anyio.sleep(0.05)
            else:
                return token, expired_at


async def test_lock_tokens_ttl_and_ownership_survive_a_leader_change(tmp_path: Path) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = BatteryCluster(tasks, tmp_path, FACTORIES)
        leader = await cluster.start_all()
        first, second = cluster.followers(leader)
        via = {node_id: cluster.objects[node_id]["lock"] for node_id in cluster.nodes}

        alice = await via[first].acquire("alice", 30.0)
        with pytest.raises(errors.LockHeldError) as held:
            await via[second].acquire("bob", 1.0)
        assert held.value.owner == "alice"
        with pytest.raises(errors.NotHolderError):
            await via[leader].release("bob", alice)  # not the owner
        with pytest.raises(errors.NotHolderError):
            await via[second].release("alice", alice + 1)  # not the token
        assert await via[second].acquire("alice", 30.0) == alice  # a retry keeps the token
        expiry = await via[first].refresh("alice", alice, 60.0)
        assert expiry > held.value.expires_at

        print(f"stopping the leader {leader}")
        await cluster.stop(leader)
        new_leader = await cluster.leader()
        assert new_leader != leader
        survivor = via[new_leader]
        with pytest.raises(errors.LockHeldError) as still_held:
            await survivor.acquire("bob", 1.0)
        assert (still_held.value.owner, still_held.value.expires_at) == ("alice", expiry)
        assert await cluster.same_everywhere("lock", "holder") == Lease("alice", alice, expiry)

        await survivor.release("alice", alice)
        bob = await via[cluster.followers(new_leader)[0]].acquire("bob", 0.5)
        assert bob > alice
        carol, bob_expiry = await acquire_when_free(survivor, "carol", 10.0)
        assert carol > bob
        lease = await survivor.holder_now()
        assert lease.owner == "carol"
        assert lease.expires_at - 10.0 >= bob_expiry - 1e-6  # granted on leader time after
        with pytest.raises(errors.NotHolderError):
            await survivor.release("bob", bob)  # bob's lease ran out: he learns it

        fence = Fence()
        assert fence.admit(carol)
        assert not fence.admit(bob)  # a stale holder's late write is refused
        assert await cluster.same_everywhere("lock", "last_token") == carol
        await cluster.close()


async def test_semaphore_and_election_on_a_cluster(tmp_path: Path) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = BatteryCluster(tasks, tmp_path, FACTORIES)
        leader = await cluster.start_all()
        a, b = (cluster.objects[node_id] for node_id in cluster.followers(leader))
        here = cluster.objects[leader]

        tokens = [await a["pool"].acquire("w1", 30.0), await b["pool"].acquire("w2", 30.0)]
        with pytest.raises(errors.NoPermitError):
            await here["pool"].acquire("w3", 30.0)
        await b["pool"].release("w2", tokens[1])
        tokens.append(await here["pool"].acquire("w3", 30.0))
        assert tokens == sorted(set(tokens))
        holders = await cluster.same_everywhere("pool", "holders")
        assert [lease.owner for lease in holders] == ["w1", "w3"]

        term = await a["election"].campaign("w1", 30.0)
        with pytest.raises(errors.LockHeldError):
            await b["election"].campaign("w2", 30.0)
        await here["election"].resign("w1", term)
        next_term = await b["election"].campaign("w2", 30.0)
        assert next_term > term
        assert (await cluster.same_everywhere("election", "leader")).owner == "w2"
        await cluster.close()
