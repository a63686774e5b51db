"""A distributed lock with a time-to-live on a 3-process cluster: ``python examples/lock.py``.

Commands must give the same result on every replica, so the lock never reads the local
clock: expiry is judged against ``replobj.current_entry().timestamp``, the time the
leader stamped on the command, identical on every replica. A successful ``acquire``
returns a fencing token (a counter kept in the replicated table: unique and increasing;
not the log index, which calls submitted together share) that the holder can pass to
the resource it protects so stale holders are refused.

The parent starts three members (this file run with ``member ...``), takes and
releases the lock from different members, lets a lease expire, and kills the leader
while the lock is held to show the holder survives. It exits 0 if everything held.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import anyio

import replobj
from replobj.demo import ProcessCluster, check, run_scenario, say, serve_member


@replobj.replicated(name="examples.LockTable")
class LockTable:
    """Named locks, each held by one owner until released or until its lease runs out."""

    def __init__(self) -> None:
        self.leases: dict[str, tuple[str, float, int]] = {}
        self.tokens_issued = 0

    def acquire(self, name: str, owner: str, ttl: float) -> int:
        """Take (or renew, for the same owner) lock ``name`` for ``ttl`` seconds.

        :returns: a fencing token (> 0) if ``owner`` now holds the lock, else 0.
        """
        entry = replobj.current_entry()
        lease = self.leases.get(name)
        if lease is not None and lease[0] != owner and lease[1] > entry.timestamp:
            return 0
        if lease is not None and lease[0] == owner:
            token = lease[2]
        else:
            self.tokens_issued += 1
            token = self.tokens_issued
        self.leases[name] = (owner, entry.timestamp + ttl, token)
        return token

    def release(self, name: str, owner: str) -> bool:
        """Give the lock back; returns whether ``owner`` held it (an expired lease counts)."""
        lease = self.leases.get(name)
        if lease is None or lease[0] != owner:
            return False
        del self.leases[name]
        return True

    @replobj.query
    def holder(self, name: str) -> tuple[str, float] | None:
        """The last owner and lease expiry (leader time) of ``name``; the caller compares."""
        lease = self.leases.get(name)
        return None if lease is None else (lease[0], lease[1])


PROGRAM = [sys.executable, str(Path(__file__).resolve()), "member"]


async def scenario(cluster: ProcessCluster) -> None:
    """Contend for a lock from several members, let a lease expire, kill the leader."""
    say("starting members a, b, c")
    await cluster.start(["a", "b", "c"])
    leader = await cluster.wait_for_leader()
    say(f"leader: {leader}")
    a, b, c = (cluster.members[node] for node in ("a", "b", "c"))

    say("alice (via a) takes 'printer' for 30 s; bob (via b) tries")
    alice_token = await a.call("locks", "acquire", "printer", "alice", 30.0)
    check(alice_token > 0, f"alice holds it, fencing token {alice_token}")
    check(await b.call("locks", "acquire", "printer", "bob", 1.0) == 0, "bob is refused")
    check(await c.call("locks", "release", "printer", "alice"), "alice releases it (via c)")

    say("bob takes it with a 1 s lease; alice retries until the lease runs out")
    bob_token = await b.call("locks", "acquire", "printer", "bob", 1.0)
    check(bob_token > alice_token, f"bob holds it, fencing token {bob_token}")
    taken_at = time.monotonic()
    attempts = 0
    with anyio.fail_after(10):
        for attempts in range(1, 101):  # noqa: B007 - reported below
            token = await a.call("locks", "acquire", "printer", "alice", 30.0)
            if token:
                break
            await anyio.sleep(0.1)
    waited = time.monotonic() - taken_at
    check(waited >= 0.5, f"alice got it back after {waited:.1f} s, attempt {attempts}")
    check(token > bob_token, "fencing tokens only grow")

    say(f"kill -9 the leader {leader} while alice holds the lock")
    await cluster.kill(leader)
    survivors = sorted(cluster.members)
    new_leader = await cluster.wait_for_leader(among=survivors, newer_than=leader)
    say(f"new leader: {new_leader}")
    other = cluster.members[survivors[-1]]
    refused = await other.call("locks", "acquire", "printer", "bob", 1.0)
    check(refused == 0, "bob is still refused: the lease survived the crash")
    holder = await other.read("locks", "holder", "printer")
    check(holder is not None and holder[0] == "alice", f"{survivors[-1]} says alice holds it")
    renewed = await other.call("locks", "acquire", "printer", "alice", 30.0)
    check(renewed == token, "alice renews her lease and keeps her token")


def main() -> int:
    """Run the example (or, with ``member ...``, one member of it)."""
    if sys.argv[1:2] == ["member"]:
        return serve_member({"locks": LockTable}, sys.argv[2:])
    return run_scenario(scenario, PROGRAM, title="distributed lock with TTL on 3 processes")


if __name__ == "__main__":
    sys.exit(main())
