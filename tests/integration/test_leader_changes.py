"""``Node.leader_changes()`` and ``Node.is_leader``: following leadership from user code.

Whole nodes in one process over TCP with RocksDB: a follower's iterator reports the first
leader, then the next one after the first is stopped, and ends with ``NodeStoppedError``
once its own node stops.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import anyio
import pytest
from cluster_helpers import Cluster

from replobj import errors
from replobj.raft.types import NodeId

pytestmark = pytest.mark.anyio


async def test_a_follower_sees_each_leader_once_and_the_iterator_ends_when_it_stops(
    tmp_path: Path,
) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        first = await cluster.start_all()
        assert cluster.nodes[first].is_leader
        watcher_id = next(n for n in cluster.nodes if n != first)
        watcher = cluster.nodes[watcher_id]
        assert not watcher.is_leader
        seen: list[NodeId | None] = []
        ended: list[BaseException] = []
        changed, done = anyio.Event(), anyio.Event()

        async def watch() -> None:
            try:
                async for leader in watcher.leader_changes():
                    seen.append(leader)
                    changed.set()
            except errors.NodeStoppedError as exc:
                ended.append(exc)
                done.set()

        tasks.start_soon(watch)
        with anyio.fail_after(10):
            while first not in seen:
                await changed.wait()
                changed = anyio.Event()
        await cluster.stop(first)  # hands leadership over
        second = await cluster.leader()
        with anyio.fail_after(10):
            while seen[-1] != second:
                await changed.wait()
                changed = anyio.Event()
        known = [leader for leader in seen if leader is not None]
        assert known == [first, second], seen
        assert all(a != b for a, b in itertools.pairwise(seen)), "repeated"
        await cluster.close()
        with anyio.fail_after(5):
            await done.wait()
        assert isinstance(ended[0], errors.NodeStoppedError)
