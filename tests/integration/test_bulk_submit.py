"""Bulk submit: ``await proxy.command.many(...)`` runs N commands behind one awaitable.

Results come back in order; each command applies exactly once (as a single call would),
also across a leader change; a command that raises does not stop the others.
"""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import pytest
from cluster_helpers import Cluster

from replobj import errors

pytestmark = pytest.mark.anyio


async def test_many_returns_every_result_in_order_from_leader_and_follower(
    tmp_path: Path,
) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        leader = await cluster.start_all()
        follower = next(n for n in cluster.nodes if n != leader)
        first = [f"a{i}" for i in range(300)]
        second = [f"b{i}" for i in range(300)]
        assert await cluster.proxies[leader].add.many(first) == list(range(1, 301))
        assert await cluster.proxies[follower].add.many(second) == list(range(301, 601))
        assert await cluster.proxies[leader].add.many([]) == []
        for node_id in cluster.nodes:
            assert await cluster.proxies[node_id].snapshot_values() == first + second
        await cluster.close()


async def test_a_failing_command_does_not_stop_the_others(tmp_path: Path) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        leader = await cluster.start_all()
        proxy = cluster.proxies[leader]
        with pytest.raises(ValueError, match="first"):
            await proxy.fail.many(["first", "second"])
        outcomes = await proxy.fail.many(["x", "y"], return_exceptions=True)
        assert [str(o) for o in outcomes] == ["x", "y"]
        assert all(isinstance(o, ValueError) for o in outcomes)
        # All four applied: each adds 1000 before raising.
        assert await proxy.add("after") == 4001
        await cluster.close()


async def test_bad_arguments_are_refused_before_anything_is_sent(tmp_path: Path) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        leader = await cluster.start_all()
        proxy = cluster.proxies[leader]
        with pytest.raises(errors.UnpicklableArgumentError):
            await proxy.add.many(["ok", threading.Lock()])
        with pytest.raises(errors.ConfigurationError, match="same length"):
            await proxy.add.many(["a", "b"], ["c"])
        assert await proxy.snapshot_values() == []
        await cluster.close()


async def test_many_applies_exactly_once_across_a_leader_change(tmp_path: Path) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        leader = await cluster.start_all()
        follower = next(n for n in cluster.nodes if n != leader)
        values = [f"v{i}" for i in range(2000)]
        results: list[int] = []

        async def submit() -> None:
            results.extend(await cluster.proxies[follower].add.many(values))

        async with anyio.create_task_group() as calls:
            calls.start_soon(submit)
            await cluster.nodes[leader].transfer_leadership()
        new_leader = await cluster.leader()
        print(f"leader {leader} -> {new_leader}")
        assert new_leader != leader
        assert results == list(range(1, 2001))
        for node_id in cluster.nodes:
            assert await cluster.proxies[node_id].snapshot_values() == values
        await cluster.close()
