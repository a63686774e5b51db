"""A snapshot is pickled off the event loop, and holds exactly the state at its index.

Each test puts a :class:`Handshake` into the leader's state: pickling it blocks until a
task on the event loop lets it go. Had the snapshot been pickled on the loop, that task
could never run and the pickling would give up after its deadline (the snapshot then
fails): the handshake itself shows the loop runs meanwhile. While it is held, the tests
check what must keep working: calls are accepted, replicated and committed (followers
apply them), local reads answer, and the leader applies nothing until the state is
pickled; then it applies the waiting calls in order.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from cluster_helpers import SECRET, free_port

import replobj
from replobj.directory import DIRECTORY_NAME, ClusterDirectory
from replobj.errors import NodeStoppedError
from replobj.statemachine import StateMachine

pytestmark = pytest.mark.anyio

HANDSHAKE_DEADLINE = 20.0
"""Seconds pickling waits for the loop before it gives up (the test then fails)."""


class Handshake:
    """Pickling it (in whichever thread) waits until :attr:`released` is set."""

    entered = threading.Event()
    released = threading.Event()
    gave_up = False

    def __reduce__(self) -> tuple[Any, ...]:
        type(self).entered.set()
        if not type(self).released.wait(HANDSHAKE_DEADLINE):
            type(self).gave_up = True
            raise RuntimeError("the event loop did not run while the snapshot was pickled")
        return (Handshake, ())

    @classmethod
    def reset(cls) -> None:
        """Arm a fresh handshake for one test."""
        cls.entered, cls.released, cls.gave_up = threading.Event(), threading.Event(), False


@replobj.replicated
class Table:
    """Rows in apply order; ``arm`` adds a :class:`Handshake` to the state."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}
        self.order: list[str] = []
        self.handshake: Handshake | None = None

    def put(self, key: str, value: int) -> tuple[int, int]:
        """Set ``key``; returns the command's place in the log: (index, position)."""
        self.rows[key] = value
        self.order.append(key)
        entry = replobj.current_entry()
        return entry.index, entry.position

    def arm(self) -> None:
        """The next snapshot waits for the event loop (see :class:`Handshake`)."""
        self.handshake = Handshake()

    def disarm(self) -> None:
        """Snapshots no longer wait."""
        self.handshake = None

    @replobj.query
    def count(self) -> int:
        """How many rows there are."""
        return len(self.rows)


def _nodes(root: Path, size: int) -> tuple[dict[str, replobj.Node], dict[str, Any]]:
    addresses = {f"n{i}": f"127.0.0.1:{free_port()}" for i in range(size)}
    print(f"addresses {addresses}, data under {root}")
    nodes, proxies = {}, {}
    for node_id, address in addresses.items():
        node = replobj.Node(
            node_id,
            secret=SECRET,
            listen=address,
            peers=addresses,
            data_dir=root / node_id,
            snapshot_entries=1_000_000,  # only the snapshots the tests ask for
            election_timeout=0.4,
            heartbeat_interval=0.05,
            call_timeout=30.0,
        )
        nodes[node_id] = node
        proxies[node_id] = node.attach("t", Table())
    return nodes, proxies


async def _wait(condition: Any, what: str, timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 - polling state the nodes expose
            await anyio.sleep(0.01)
    print(f"ok: {what}")


def _stored_snapshot(node: replobj.Node) -> tuple[int, Table]:
    """The node's stored snapshot, restored into fresh objects: (its index, its table)."""
    storage = node.runtime.storage
    data = storage.read_snapshot_chunk(0, storage.snapshot_size())
    fresh = StateMachine()
    fresh.attach(DIRECTORY_NAME, ClusterDirectory())
    table = fresh.attach("t", Table())
    fresh.restore(data)
    assert fresh.applied_index == storage.snapshot_meta().last_index
    return fresh.applied_index, table


async def test_calls_commit_and_reads_answer_while_the_leader_pickles_then_apply_in_order(
    tmp_path: Path,
) -> None:
    Handshake.reset()
    nodes, proxies = _nodes(tmp_path, 3)
    async with anyio.create_task_group() as tasks:
        for node in nodes.values():
            await tasks.start(node.serve)
        leader_id = await nodes["n0"].wait_for_leader(10.0)
        leader, table = nodes[leader_id], proxies[leader_id]
        followers = [n for n in nodes.values() if n is not leader]
        for i in range(20):
            await table.put(f"k{i}", i)
        await table.arm()
        before = leader.statemachine.applied_index
        taken: list[int] = []

        async def snapshot() -> None:
            taken.append(await leader.snapshot())

        late: dict[str, tuple[int, int]] = {}

        async def put_late(key: str, value: int) -> None:
            late[key] = await table.put(key, value)

        async with anyio.create_task_group() as work:
            work.start_soon(snapshot)
            try:
                assert await anyio.to_thread.run_sync(Handshake.entered.wait, HANDSHAKE_DEADLINE)
                for i in range(5):
                    work.start_soon(put_late, f"late{i}", 100 + i)
                await _wait(
                    lambda: all(n.statemachine.objects["t"].count() == 25 for n in followers),
                    "followers applied the calls made while the leader pickles",
                )
                assert leader.status().commit_index > before
                assert leader.statemachine.applied_index == before, "applied during the pickling"
                assert await table.count.local() == 20, "a local read answers meanwhile"
                assert late == {}
                term = leader.status().term
                # Hold the pickling while the leader sends heartbeat rounds worth two
                # election timeouts (0.4 s / 0.05 s each): they go out during the pickling,
                # and no follower calls an election.
                rounds = leader.runtime.raft._seq
                await _wait(
                    lambda: leader.runtime.raft._seq >= rounds + 2 * 8,
                    "two election timeouts of heartbeat rounds sent while the leader pickles",
                )
                assert leader.statemachine.applied_index == before, "applied during the pickling"
                assert {n.status().leader for n in nodes.values()} == {leader_id}
                assert {n.status().term for n in nodes.values()} == {term}
            finally:
                Handshake.released.set()
        assert not Handshake.gave_up
        assert taken == [before]
        assert min(late.values()) > (before, 0)
        order = nodes[leader_id].statemachine.objects["t"].order
        assert order[20:] == sorted(late, key=late.__getitem__), "applied in log order"
        index, restored = _stored_snapshot(leader)
        assert index == before
        assert restored.rows == {f"k{i}": i for i in range(20)}
        assert restored.order == [f"k{i}" for i in range(20)]
        assert leader.status().snapshot_error is None
        assert leader.status().snapshot_index == before
        for node in nodes.values():
            await node.aclose()


async def test_a_node_stopped_while_it_pickles_stops_and_restarts_on_its_log(
    tmp_path: Path,
) -> None:
    Handshake.reset()
    nodes, proxies = _nodes(tmp_path, 1)
    node, table = nodes["n0"], proxies["n0"]
    async with anyio.create_task_group() as tasks:
        await tasks.start(node.serve)
        await node.wait_for_leader(10.0)
        for i in range(10):
            await table.put(f"k{i}", i)
        await table.arm()
        outcome: list[object] = []

        async def snapshot() -> None:
            try:
                outcome.append(await node.snapshot())
            except NodeStoppedError as exc:  # stopped while it pickled (most runs)
                outcome.append(exc)

        tasks.start_soon(snapshot)
        assert await anyio.to_thread.run_sync(Handshake.entered.wait, HANDSHAKE_DEADLINE)
        tasks.start_soon(node.aclose)
        Handshake.released.set()
    print(f"the snapshot asked for: {outcome}")
    assert len(outcome) == 1
    Handshake.reset()
    Handshake.released.set()  # the restarted node's snapshots need not wait
    again = replobj.Node(
        "n0",
        secret=SECRET,
        listen=node.listen,
        peers=node.peers,
        data_dir=node.data_dir,
        election_timeout=0.4,
        heartbeat_interval=0.05,
    )
    again_table = again.attach("t", Table())
    async with again:
        await again.wait_for_leader(10.0)
        assert await again_table.count() == 10  # type: ignore[attr-defined]
        await again_table.disarm()  # type: ignore[attr-defined]
        assert await again.snapshot() > 0
