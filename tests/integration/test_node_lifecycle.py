"""A ``Node`` object's lifecycle: started once at a time, restartable after it closed, and
honest about having been removed.

A closed node started again re-opens its store and rebuilds its objects from the stored
snapshot and log. The attached objects still hold what was applied before the close, so
the rebuild starts from their state at attach time (or the snapshot): nothing may be
applied to them twice.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from cluster_helpers import SECRET, Cluster, Register, free_port

import replobj
from replobj import errors


def solo(tmp_path: Path | None, **options: object) -> tuple[replobj.Node, Register, object]:
    """A one-member cluster; returns the node, the attached object and its proxy."""
    register = Register()
    node = replobj.Node(
        "solo",
        secret=SECRET,
        listen=f"127.0.0.1:{free_port()}",
        data_dir=None if tmp_path is None else tmp_path / "solo",
        election_timeout=0.3,
        heartbeat_interval=0.05,
        **options,  # type: ignore[arg-type]
    )
    return node, register, node.attach("reg", register)


@pytest.mark.parametrize("snapshot_entries", [1_000, 2])
async def test_a_closed_node_starts_again_without_applying_twice(
    tmp_path: Path, snapshot_entries: int
) -> None:
    node, register, proxy = solo(tmp_path, snapshot_entries=snapshot_entries)
    async with node:
        await node.wait_for_leader(10)
        for value in ("a", "b", "c"):
            await proxy.add(value)  # type: ignore[attr-defined]
    assert register.values == ["a", "b", "c"]
    async with node:
        await node.wait_for_leader(10)
        assert await proxy.add("d") == 4  # type: ignore[attr-defined]
        assert register.values == ["a", "b", "c", "d"]
        assert node.status().applied_index >= 4
    async with node:  # and a third time
        await node.wait_for_leader(10)
        assert await proxy.snapshot_values() == ["a", "b", "c", "d"]  # type: ignore[attr-defined]


async def test_a_closed_node_without_a_data_dir_starts_again_empty(tmp_path: Path) -> None:
    node, register, proxy = solo(None)
    async with node:
        await node.wait_for_leader(10)
        await proxy.add("a")  # type: ignore[attr-defined]
    async with node:  # memory only: nothing survived, like a restarted process
        await node.wait_for_leader(10)
        assert await proxy.add("b") == 1  # type: ignore[attr-defined]
        assert register.values == ["b"]


async def test_starting_a_running_node_is_refused(tmp_path: Path) -> None:
    node, _, proxy = solo(tmp_path)
    async with node:
        await node.wait_for_leader(10)
        with pytest.raises(errors.NodeClosedError, match="already running"):
            async with node:
                pass
        async with anyio.create_task_group() as tasks:
            with pytest.raises(errors.NodeClosedError, match="already running"):
                await tasks.start(node.serve)
        assert await proxy.add("still serving") == 1  # type: ignore[attr-defined]


async def test_a_member_restarted_in_place_catches_up(tmp_path: Path) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        leader = await cluster.start_all()
        follower = next(n for n in cluster.nodes if n != leader)
        node = cluster.nodes[follower]
        await cluster.proxies[leader].add("one")
        await node.aclose()
        await cluster.proxies[leader].add("two")
        await tasks.start(node.serve)  # the same Node object again
        await cluster.wait_until(
            lambda: node.status().applied_index >= cluster.nodes[leader].status().commit_index
        )
        assert await cluster.proxies[follower].snapshot_values.local() == ["one", "two"]
        await cluster.close()


async def test_a_removed_member_says_so_in_its_status(tmp_path: Path) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        leader = await cluster.start_all()
        victim = next(n for n in cluster.nodes if n != leader)
        assert not cluster.nodes[victim].status().removed
        await cluster.nodes[leader].remove_member(victim)
        await cluster.wait_until(lambda: cluster.nodes[victim].status().removed)
        status = cluster.nodes[victim].status()
        assert status.role == "removed"
        assert victim not in status.voters
        assert not cluster.nodes[leader].status().removed
        await cluster.close()


async def test_an_unusable_data_dir_raises_a_storage_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    node, _, _ = solo(None)
    node.data_dir = blocker / "solo"  # under a regular file: cannot be created
    with pytest.raises(errors.StorageError, match="a-file"):  # not an exception group
        async with node:
            pass
    with pytest.raises(errors.StorageError, match="a-file"):  # and it can be retried
        async with node:
            pass


def test_an_unusable_data_dir_raises_a_storage_error_from_a_blocking_node(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    node = replobj.BlockingNode(
        "solo", secret=SECRET, listen=f"127.0.0.1:{free_port()}", data_dir=blocker / "solo"
    )
    with pytest.raises(errors.StorageError, match="a-file"):
        node.start()


def test_a_blocking_node_refuses_a_second_start_and_starts_again_after_close(
    tmp_path: Path,
) -> None:
    node = replobj.BlockingNode(
        "solo",
        secret=SECRET,
        listen=f"127.0.0.1:{free_port()}",
        data_dir=tmp_path / "solo",
        election_timeout=0.3,
        heartbeat_interval=0.05,
    )
    register = node.attach("reg", Register())
    with node:
        node.wait_for_leader(10)
        assert register.add("a") == 1
        with pytest.raises(errors.NodeClosedError, match="already running"):
            node.start()
        assert register.add("b") == 2
    with node:
        node.wait_for_leader(10)
        assert register.add("c") == 3
