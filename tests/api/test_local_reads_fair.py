"""A task looping on calls that need no round-trip must not starve its node (issue 11).

``await proxy.q.local()`` answers from this replica; before the fix it never yielded to
the event loop, so a loop of local reads on the leader stopped its heartbeats and the
followers elected a new leader. Each test runs a 3-node cluster in this process (TCP on
loopback, memory storage), every node on its own event loop in its own thread (as
separate processes would be: one starved loop must not pause the others' clocks), and
loops for three election timeouts on one node's loop.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

import replobj

ELECTION_TIMEOUT = 0.6

BACKENDS = pytest.mark.parametrize("backend", ["asyncio", "trio"])


@replobj.replicated(name="tests.fair.Box")
class Box:
    """One value, a command to set it and a query to read it."""

    def __init__(self) -> None:
        self.value = 0

    def put(self, value: int) -> int:
        """Set the value."""
        self.value = value
        return value

    @replobj.query
    def get(self) -> int:
        """The value."""
        return self.value


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """Three nodes, each served by its own blocking portal (event-loop thread)."""

    def __init__(self, stack: ExitStack, backend: str) -> None:
        addresses = {f"n{i}": f"127.0.0.1:{_free_port()}" for i in range(3)}
        print(f"cluster addresses {addresses}, backend {backend}")
        secret = replobj.new_secret()
        self.nodes = {
            n: replobj.Node(
                n,
                listen=a,
                peers=addresses,
                secret=secret,
                election_timeout=ELECTION_TIMEOUT,
                heartbeat_interval=0.05,
            )
            for n, a in addresses.items()
        }
        self.proxies = {n: node.attach("box", Box()) for n, node in self.nodes.items()}
        self.portals: dict[str, BlockingPortal] = {
            n: stack.enter_context(start_blocking_portal(backend)) for n in self.nodes
        }
        for n, node in self.nodes.items():
            self.portals[n].start_task(node.serve)
            stack.callback(self.portals[n].call, node.aclose)
        self.leader = self._agreed_leader()

    def _agreed_leader(self) -> str:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            leaders = {node.status().leader for node in self.nodes.values()}
            if len(leaders) == 1 and None not in leaders:
                return str(leaders.pop())
            time.sleep(0.01)  # polling with a deadline, from the test's own thread
        raise AssertionError(f"no agreed leader in 10 s: {self.terms()}")

    def terms(self) -> dict[str, int]:
        """Every node's current term."""
        return {n: node.status().term for n, node in self.nodes.items()}

    def follower(self) -> str:
        """A node that is not the leader."""
        return min(n for n in self.nodes if n != self.leader)

    def run(self, node_id: str, func: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Run ``func(*args)`` on ``node_id``'s event loop and return its result."""
        return self.portals[node_id].call(func, *args)


@contextmanager
def _cluster(backend: str) -> Iterator[Cluster]:
    with ExitStack() as stack:
        yield Cluster(stack, backend)


async def _loop_for(seconds: float, call: Callable[[], Awaitable[object]]) -> int:
    """Await ``call()`` back to back for ``seconds`` of wall time; returns the count."""
    count = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await call()
        count += 1
    return count


@BACKENDS
def test_local_read_loop_on_the_leader_keeps_the_cluster_quiet(backend: str) -> None:
    with _cluster(backend) as cluster:
        before = cluster.terms()
        leader, follower = cluster.leader, cluster.follower()
        writes: list[int] = []

        async def reads_while_a_task_writes() -> int:
            async def writer() -> None:
                writes.extend([await cluster.proxies[leader].put(i) for i in range(1, 4)])

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(writer)
                return await _loop_for(3 * ELECTION_TIMEOUT, cluster.proxies[leader].get.local)

        reads = cluster.run(leader, reads_while_a_task_writes)
        print(f"{reads} local reads in {3 * ELECTION_TIMEOUT:g} s; terms {cluster.terms()}")
        assert cluster.terms() == before, "an election happened while the leader was reading"
        assert cluster.nodes[follower].status().leader == leader
        assert writes == [1, 2, 3]


@pytest.mark.parametrize("call", ["wait_for_leader", "snapshot"])
def test_other_calls_without_a_round_trip_yield_too(call: str) -> None:
    with _cluster("asyncio") as cluster:
        before = cluster.terms()
        method = getattr(cluster.nodes[cluster.leader], call)
        cluster.run(cluster.leader, _loop_for, 3 * ELECTION_TIMEOUT, method)
        assert cluster.terms() == before


def test_a_local_read_sees_no_current_entry() -> None:
    @replobj.replicated(name="tests.fair.Peek")
    class Peek:
        def touch(self) -> None:
            """A command (every replicated class needs one)."""

        @replobj.query
        def entry(self) -> str:
            """What ``current_entry()`` does in a query."""
            try:
                replobj.current_entry()
            except replobj.errors.NoCurrentEntryError:
                return "none"
            return "some"

    node = replobj.Node("p", listen=f"127.0.0.1:{_free_port()}", secret=replobj.new_secret())
    peek = node.attach("peek", Peek())

    async def main() -> str:
        async with node:
            return str(await peek.entry.local())

    assert anyio.run(main) == "none"
