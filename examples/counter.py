"""A replicated counter on a 3-process cluster: ``python examples/counter.py``.

The parent starts three members of the cluster as OS processes on 127.0.0.1 (each one
is this file run as ``python examples/counter.py member --id a ...``: a
:class:`replobj.Node` with a :class:`Counter` attached), increments the counter
concurrently through every member, shows that every replica agrees, kills a member
and keeps counting. It exits 0 if everything held.

In your own program the member side is just::

    node = replobj.Node("a", listen="127.0.0.1:7001", peers=PEERS, data_dir="data/a",
                        secret=os.environ["REPLOBJ_SECRET"])  # the same on every member
    counter = node.attach("counter", Counter())
    async with node:
        await counter.incr(5)
        print(await counter.get())
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

import replobj
from replobj.demo import ProcessCluster, check, run_scenario, say, serve_member


@replobj.replicated(name="examples.Counter")
class Counter:
    """A number that only commands change."""

    def __init__(self) -> None:
        self.value = 0

    def incr(self, n: int = 1) -> int:
        """Add ``n``; returns the new value (as applied on the calling member)."""
        self.value += n
        return self.value

    @replobj.query
    def get(self) -> int:
        """The current value."""
        return self.value


PROGRAM = [sys.executable, str(Path(__file__).resolve()), "member"]


async def scenario(cluster: ProcessCluster) -> None:
    """Count from every member, check the replicas agree, lose one member, count on."""
    say("starting members a, b, c")
    await cluster.start(["a", "b", "c"])
    leader = await cluster.wait_for_leader()
    say(f"leader: {leader}")

    say("30 concurrent incr(1) calls, 10 through each member")
    async with anyio.create_task_group() as tasks:
        for node in cluster.members:
            for _ in range(10):
                tasks.start_soon(cluster.members[node].call, "counter", "incr", 1)
    for node, member in cluster.members.items():
        value = await member.read("counter", "get")
        check(value == 30, f"{node}: get() == {value} (linearizable read)")

    follower = next(node for node in cluster.members if node != leader)
    say(f"kill -9 follower {follower}; the other two are still a majority")
    await cluster.kill(follower)
    result = await cluster.members[leader].call("counter", "incr", 12)
    check(result == 42, f"incr(12) through {leader} returned {result}")

    say(f"restart {follower} from its data directory")
    await cluster.restart(follower)
    await cluster.wait_caught_up([follower])
    value = await cluster.members[follower].local("counter", "get")
    check(value == 42, f"{follower}: get.local() == {value} after catching up")


def main() -> int:
    """Run the example (or, with ``member ...``, one member of it)."""
    if sys.argv[1:2] == ["member"]:
        return serve_member({"counter": Counter}, sys.argv[2:])
    return run_scenario(scenario, PROGRAM, title="replicated counter on 3 processes")


if __name__ == "__main__":
    sys.exit(main())
