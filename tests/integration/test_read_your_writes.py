"""Read-your-writes on any member: ``cmd.indexed(...)`` then ``node.wait_applied(index)``.

Real nodes in one process (TCP on loopback, RocksDB), both anyio backends.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import anyio
import pytest
from cluster_helpers import Cluster

import replobj
from replobj import errors

pytestmark = pytest.mark.anyio


async def test_indexed_returns_the_result_and_the_entry_it_was_applied_from(
    tmp_path: Path,
) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        leader = await cluster.start_all()
        follower = next(n for n in cluster.nodes if n != leader)
        first = await cluster.proxies[leader].add.indexed("a")
        assert isinstance(first, replobj.Indexed)
        value, index = first
        assert (value, index) == (first.value, first.index)
        assert value == 1
        assert 0 < index <= cluster.nodes[leader].status().applied_index
        # Through a follower too; a later call gets a later entry.
        second = await cluster.proxies[follower].add.indexed("b")
        assert second.value == 2
        assert second.index > first.index
        # What the command raised is raised, as for a plain call.
        with pytest.raises(ValueError, match="boom"):
            await cluster.proxies[leader].fail.indexed("boom")
        with pytest.raises(errors.NotACommandError, match="is a query"):
            cluster.proxies[leader].snapshot_values.indexed()
        await cluster.close()


async def test_a_follower_reads_a_write_made_elsewhere_after_wait_applied_under_load(
    tmp_path: Path,
) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        leader = await cluster.start_all()
        followers = [n for n in cluster.nodes if n != leader]
        stop = anyio.Event()
        numbers = itertools.count()

        async def load(member: str) -> None:
            while not stop.is_set():
                await cluster.proxies[member].add(f"load-{next(numbers)}")

        waited = 0
        async with anyio.create_task_group() as loaders:
            for member in [leader, *followers] * 4:  # 12 writers on every member
                loaders.start_soon(load, member)
            for round_ in range(40):
                writer, reader = (leader, followers[0]) if round_ % 2 else followers
                value = f"mine-{round_}"
                _, index = await cluster.proxies[writer].add.indexed(value)
                node = cluster.nodes[reader]
                waited += node.status().applied_index < index
                applied = await node.wait_applied(index)
                assert applied >= index
                seen = await cluster.proxies[reader].snapshot_values.local()
                assert value in seen, f"{reader} applied {applied} >= {index} but misses {value}"
            stop.set()
        # The point of waiting: the reader was behind the write at least sometimes.
        assert waited > 0, "every reader was already level: the test showed nothing"
        await cluster.close()


async def test_wait_applied_returns_at_once_when_applied_and_times_out_past_the_log(
    tmp_path: Path,
) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        leader = await cluster.start_all()
        node = cluster.nodes[leader]
        _, index = await cluster.proxies[leader].add.indexed("x")
        assert await node.wait_applied(index) >= index
        assert await node.wait_applied(0) >= index
        began = anyio.current_time()
        with pytest.raises(errors.CallTimeoutError, match="not 1000000") as caught:
            await node.wait_applied(1_000_000, timeout=0.3)
        assert caught.value.outcome_known
        assert 0.3 <= anyio.current_time() - began < 5.0
        for bad in (-1, 1.5, "3", True):
            with pytest.raises(errors.ConfigurationError, match="index must be an int"):
                await node.wait_applied(bad)  # type: ignore[arg-type]
        await cluster.close()
    with pytest.raises(errors.NodeStoppedError):
        await node.wait_applied(1)


def test_blocking_node_offers_indexed_and_wait_applied(tmp_path: Path) -> None:
    from cluster_helpers import SECRET, Register, free_port

    address = f"127.0.0.1:{free_port()}"
    node = replobj.BlockingNode(
        "solo", listen=address, peers={"solo": address}, data_dir=tmp_path / "solo", secret=SECRET
    )
    register = node.attach("reg", Register())
    with node:
        node.wait_for_leader(10.0)
        value, index = register.add.indexed("v")
        assert value == 1
        assert node.wait_applied(index) >= index
        assert node.metrics().commands >= 1
        with pytest.raises(errors.NotACommandError, match="only commands"):
            register.snapshot_values.indexed()
