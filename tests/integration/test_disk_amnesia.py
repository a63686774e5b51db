"""Amnesia on real nodes: a voter restarted under its id on a wiped data directory.

Raft assumes a member never forgets what it acknowledged or whom it voted for. A member
whose directory is wiped comes back with an empty log. Restarted to join
(``join=True``, what docs/operations.md prescribes), the core's guard
(``RaftNode._vote_withheld``) keeps it from voting or standing for election until a
leader has reached it and it holds what was committed then. Three nodes on RocksDB
directories and TCP, every link cuttable (:class:`FaultyTransport`):

- c acknowledges an entry with the leader, c is wiped and restarted, the leader dies, b and
  c try to elect b: no leader is elected without the entry, and once the old leader is back
  the entry is everywhere;
- a member cut off since the cluster was born still has an empty log: the wiped member
  does not elect it a second leader in the first leader's term, and once the links heal
  the member with the log is elected and nothing acknowledged is lost.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from cluster_helpers import Register, free_port

import replobj
from replobj.transport import FaultyTransport, Transport

NODES = ("a", "b", "c")


SECRET = replobj.new_secret()
"""A random cluster secret for this module's nodes."""


class CuttableCluster:
    """Three nodes on RocksDB directories, each transport wrapped to cut links at will."""

    def __init__(self, tasks: anyio.abc.TaskGroup, root: Path) -> None:
        """Pick the addresses; nothing starts yet."""
        self.tasks, self.root = tasks, root
        self.addresses = {node: f"127.0.0.1:{free_port()}" for node in NODES}
        self.nodes: dict[str, replobj.Node] = {}
        self.proxies: dict[str, Any] = {}
        self.links: dict[str, FaultyTransport] = {}
        self.cut_from_birth: set[frozenset[str]] = set()
        print(f"cluster {self.addresses}, data under {root}")

    async def start(
        self, node_id: str, election_timeout: float = 0.3, *, join: bool = False
    ) -> None:
        """Start ``node_id`` on its directory (a founder, or ``join`` a running cluster)."""

        def wrap(inner: Transport) -> Transport:
            link = FaultyTransport(inner, seed=7)
            for pair in self.cut_from_birth:
                if node_id in pair:
                    (other,) = pair - {node_id}
                    link.partition(other)
            self.links[node_id] = link
            return link

        node = replobj.Node(
            node_id,
            secret=SECRET,
            listen=self.addresses[node_id],
            peers=dict(self.addresses),
            data_dir=self.root / node_id,
            join=join,
            election_timeout=election_timeout,
            heartbeat_interval=0.05,
            call_timeout=5.0,
            wrap_transport=wrap,
        )
        self.proxies[node_id] = node.attach("reg", Register())
        await self.tasks.start(node.serve)
        self.nodes[node_id] = node

    async def start_all(self) -> str:
        """Start every founder; return the leader they agree on."""
        for node in NODES:
            await self.start(node)
        leader = await self.leader(list(NODES))
        assert leader is not None, "no leader elected"
        return leader

    async def stop(self, node_id: str) -> None:
        """Stop ``node_id`` (cut it off first, so a leader cannot hand over)."""
        self.isolate(node_id)
        await self.nodes.pop(node_id).aclose()

    async def wipe_and_restart(
        self, node_id: str, election_timeout: float = 0.3, *, join: bool = False
    ) -> None:
        """Stop ``node_id``, delete its data directory, start it again under its id."""
        await self.nodes.pop(node_id).aclose()
        shutil.rmtree(self.root / node_id)
        await self.start(node_id, election_timeout, join=join)
        assert self.nodes[node_id].status().term == 0, "the wiped node did not start afresh"

    def isolate(self, node_id: str) -> None:
        """Cut every link of ``node_id``, both ways."""
        for other in NODES:
            if other != node_id:
                self.links[node_id].partition(other)
                if other in self.links:
                    self.links[other].partition(node_id)

    def heal(self) -> None:
        """Restore every link between running nodes."""
        for node_id in self.nodes:
            self.links[node_id].heal()

    async def leader(self, among: list[str], timeout: float = 10.0) -> str | None:
        """The leader every node of ``among`` agrees on, or ``None`` after ``timeout``."""
        with anyio.move_on_after(timeout):
            while True:
                statuses = [self.nodes[node].status() for node in among]
                leaders = {status.leader for status in statuses}
                leader = leaders.pop() if len(leaders) == 1 else None
                if leader in among and self.nodes[leader].status().role == "leader":
                    return leader
                await anyio.sleep(0.02)
        return None

    async def first_leader(self, timeout: float = 10.0) -> str | None:
        """Whichever running node becomes leader first (``None`` if none within ``timeout``)."""
        with anyio.move_on_after(timeout):
            while True:
                for node_id, node in self.nodes.items():
                    if node.status().role == "leader":
                        return node_id
                await anyio.sleep(0.02)
        return None

    async def close(self) -> None:
        """Stop every running node."""
        for node_id in list(self.nodes):
            await self.nodes.pop(node_id).aclose()


@pytest.mark.anyio
async def test_a_wiped_voter_does_not_elect_a_candidate_missing_what_it_acknowledged(
    tmp_path: Path,
) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = CuttableCluster(tasks, tmp_path)
        leader = await cluster.start_all()
        wiped, behind = sorted(set(NODES) - {leader})
        await cluster.proxies[leader].add("before")
        cluster.isolate(behind)
        await cluster.proxies[leader].add("acked")
        print(f"{leader} acknowledged 'acked' with {wiped}; {behind} was cut off")
        await cluster.stop(leader)
        await cluster.wipe_and_restart(wiped, join=True)
        cluster.heal()
        elected = await cluster.leader([wiped, behind], timeout=8 * 0.3)
        print(f"without {leader}: elected {elected}")
        assert elected is None, f"{elected} was elected although it lacks 'acked'"

        await cluster.start(leader)
        cluster.heal()
        elected = await cluster.leader(list(NODES))
        assert elected is not None
        await cluster.nodes[elected].read_barrier()
        for node in NODES:
            await cluster.nodes[node].read_barrier()
            values = await cluster.proxies[node].snapshot_values()
            assert values == ["before", "acked"], f"{node}: {values}"
        await cluster.close()


@pytest.mark.anyio
async def test_a_wiped_voter_and_a_member_cut_off_since_birth_elect_no_second_leader(
    tmp_path: Path,
) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = CuttableCluster(tasks, tmp_path)
        cluster.cut_from_birth.add(frozenset({"a", "b"}))
        await cluster.start("a")
        await cluster.start("b")
        await cluster.start("c", election_timeout=3.0)
        first = await cluster.first_leader()
        assert first in ("a", "b"), f"c (slow election timer) won the first election: {first}"
        unborn = "b" if first == "a" else "a"
        await cluster.proxies[first].add("acked")
        first_term = cluster.nodes[first].status().term
        print(f"{first} leads term {first_term}, acknowledged 'acked' with c; {unborn} is empty")
        cluster.isolate(first)
        await cluster.wipe_and_restart("c", election_timeout=3.0, join=True)
        cluster.links["c"].partition(first)
        second = await cluster.leader([unborn, "c"], timeout=8 * 0.3)
        second_term = cluster.nodes[unborn].status().term
        print(f"then: leader {second} in term {second_term} (c: {cluster.nodes['c'].status()})")
        assert second is None or second_term != first_term, (
            f"two leaders in term {first_term}: {first}, then {second} (elected by the wiped c)"
        )
        acknowledged = ["acked"]
        if second is not None:
            with anyio.move_on_after(3.0):
                await cluster.proxies[second].add("later")
                acknowledged.append("later")
        cluster.heal()
        final = await cluster.leader(list(NODES), timeout=10.0)
        statuses = {node: cluster.nodes[node].status() for node in NODES}
        assert final is not None, f"the cluster did not heal: {statuses}"
        replicas = {}
        for node in NODES:
            await cluster.nodes[node].read_barrier()
            replicas[node] = await cluster.proxies[node].snapshot_values()
        print(f"after healing, {final} leads; acknowledged {acknowledged}; replicas {replicas}")
        lost = [value for value in acknowledged if value not in replicas[final]]
        assert not lost, f"acknowledged writes lost: {lost}; replicas {replicas}"
        assert len({tuple(values) for values in replicas.values()}) == 1, replicas
        await cluster.close()


@pytest.mark.anyio
async def test_local_reads_on_a_wiped_member_never_go_back(tmp_path: Path) -> None:
    """A wiped member restarted to join serves its first local read only once it has caught
    up (a ReadIndex barrier), not from its empty state: local reads never go back on a node."""
    async with anyio.create_task_group() as tasks:
        cluster = CuttableCluster(tasks, tmp_path)
        leader = await cluster.start_all()
        member = next(node for node in NODES if node != leader)
        for value in ("one", "two"):
            await cluster.proxies[leader].add(value)
        await cluster.nodes[member].read_barrier()
        before = await cluster.proxies[member].snapshot_values.local()
        assert before == ["one", "two"]
        await cluster.wipe_and_restart(member, join=True)
        after = await cluster.proxies[member].snapshot_values.local()
        assert after[: len(before)] == before, f"went back from {before} to {after}"
        await cluster.close()
