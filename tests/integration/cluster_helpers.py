"""An in-process cluster of real Nodes: real TCP on loopback, real RocksDB directories."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

import replobj

SECRET = replobj.new_secret()
"""A random cluster secret for this module's nodes."""


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@replobj.replicated
class Register:
    """A set of values plus a counter: enough to see lost or duplicated commands."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self.count = 0

    def add(self, value: str) -> int:
        """Append ``value``; returns how many values there are."""
        self.values.append(value)
        self.count += 1
        return self.count

    def fail(self, message: str) -> None:
        """Always raises (the same way on every replica)."""
        self.count += 1000
        raise ValueError(message)

    def stamp(self) -> float:
        """The leader-assigned timestamp of this command's entry."""
        return replobj.current_entry().timestamp

    @replobj.query
    def snapshot_values(self) -> list[str]:
        """Every value, in apply order."""
        return list(self.values)


class Cluster:
    """Starts, stops and restarts Nodes of one cluster inside a task group.

    :param size: members ``n0``.. unless ``ids`` names them.
    :param options: ``Node`` keyword arguments for every member (fast timeouts by default);
        :meth:`start` may override them per member.
    """

    def __init__(
        self,
        tasks: anyio.abc.TaskGroup,
        root: Path,
        size: int = 3,
        *,
        ids: Sequence[str] | None = None,
        **options: Any,
    ) -> None:
        self.tasks = tasks
        self.root = root
        names = list(ids) if ids is not None else [f"n{i}" for i in range(size)]
        self.addresses = {node_id: f"127.0.0.1:{free_port()}" for node_id in names}
        self.options: dict[str, Any] = {
            "secret": SECRET,
            "election_timeout": 0.4,
            "heartbeat_interval": 0.05,
            "call_timeout": 10.0,
            **options,
        }
        self.nodes: dict[str, replobj.Node] = {}
        self.proxies: dict[str, Any] = {}
        self.replicas: dict[str, Register] = {}
        print(f"cluster addresses {self.addresses}, data under {root}")

    def make(
        self, node_id: str, *, join: bool = False, data_dir: Path | None = None, **options: Any
    ) -> replobj.Node:
        """A Node for ``node_id`` on its RocksDB dir under the root (or ``data_dir``); a
        joining node gets no address book unless ``peers`` is given."""
        peers = options.pop("peers", None if join else dict(self.addresses))
        node = replobj.Node(
            node_id,
            listen=self.addresses[node_id],
            peers=peers,
            data_dir=data_dir or self.root / node_id,
            join=join,
            **{**self.options, **options},
        )
        self.replicas[node_id] = Register()
        self.proxies[node_id] = node.attach("reg", self.replicas[node_id])
        return node

    async def start(
        self, node_id: str, *, join: bool = False, data_dir: Path | None = None, **options: Any
    ) -> replobj.Node:
        """Create and start ``node_id``."""
        node = self.make(node_id, join=join, data_dir=data_dir, **options)
        await self.tasks.start(node.serve)
        self.nodes[node_id] = node
        return node

    async def start_all(self) -> str:
        """Start every node of the address book; return the elected leader."""
        for node_id in self.addresses:
            await self.start(node_id)
        return await self.leader()

    async def stop(self, node_id: str) -> None:
        """Stop ``node_id`` gracefully (a leader hands over first)."""
        await self.nodes.pop(node_id).aclose()

    async def leader(self, timeout: float = 10.0) -> str:
        """The id of the leader every running node agrees on."""
        with anyio.fail_after(timeout):
            while True:
                leaders = {n.status().leader for n in self.nodes.values()}
                if len(leaders) == 1 and None not in leaders:
                    leader = leaders.pop()
                    assert leader is not None
                    if leader in self.nodes:
                        return leader
                await anyio.sleep(0.02)

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Poll ``condition`` until it holds (deadline-bounded, not a fixed sleep)."""
        with anyio.fail_after(timeout):
            while not condition():  # noqa: ASYNC110 - polling state the nodes expose
                await anyio.sleep(0.02)

    async def close(self) -> None:
        """Stop every node."""
        for node_id in list(self.nodes):
            await self.stop(node_id)


@replobj.replicated(name="tests.Other")
class Other:
    """A different class attached under the same name on one node."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def add(self, value: str) -> int:
        """Same method name, different class."""
        self.values.append(value)
        return -1

    @replobj.query
    def snapshot_values(self) -> list[str]:
        """Every value."""
        return list(self.values)


async def start_odd_member(
    cluster: Cluster, tasks: anyio.abc.TaskGroup, node_id: str
) -> tuple[replobj.Node, Any]:
    """Start ``node_id`` of ``cluster`` with :class:`Other` attached where the others have
    a :class:`Register` (a replica bound to diverge); returns the node and its proxy."""
    odd = replobj.Node(
        node_id,
        secret=SECRET,
        listen=cluster.addresses[node_id],
        peers=dict(cluster.addresses),
        election_timeout=0.4,
        heartbeat_interval=0.05,
    )
    proxy = odd.attach("reg", Other())
    await tasks.start(odd.serve)
    await odd.wait_for_leader(10)
    return odd, proxy


def count_barriers(node: replobj.Node) -> list[float]:
    """Record when ``node`` takes a read barrier (the times, in ``time.monotonic()``)."""
    barriers: list[float] = []
    real_barrier = node.read_barrier

    async def counting_barrier(timeout: float | None = None) -> None:
        barriers.append(time.monotonic())
        await real_barrier(timeout)

    node.read_barrier = counting_barrier  # type: ignore[method-assign]
    return barriers
