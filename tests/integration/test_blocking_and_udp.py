"""BlockingNode from plain threads, and whole clusters over the UDP transport."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from cluster_helpers import Register, free_port

import replobj
from replobj import errors


def test_blocking_nodes_return_values_directly(tmp_path: Path) -> None:
    addresses = {f"b{i}": f"127.0.0.1:{free_port()}" for i in range(3)}
    print(f"addresses {addresses}, data under {tmp_path}")
    nodes = [
        replobj.BlockingNode(
            node_id,
            listen=address,
            peers=addresses,
            data_dir=tmp_path / node_id,
            election_timeout=0.4,
            heartbeat_interval=0.05,
        )
        for node_id, address in addresses.items()
    ]
    registers = [node.attach("reg", Register()) for node in nodes]
    for node in nodes:
        node.start()
    try:
        leader = nodes[0].wait_for_leader(10)
        assert leader in addresses
        assert registers[1].add("x") == 1
        assert registers[2].add("y") == 2
        assert registers[0].snapshot_values() == ["x", "y"]
        with pytest.raises(ValueError, match="nope"):
            registers[0].fail("nope")
        with pytest.raises(errors.NotAQueryError):
            registers[0].add.local("z")
        assert nodes[1].status().commit_index >= 3
    finally:
        for node in nodes:
            node.close()
    with pytest.raises(errors.NodeStoppedError):
        registers[0].add("after close")


@pytest.mark.anyio
async def test_udp_cluster_replicates_and_refuses_oversized_commands(tmp_path: Path) -> None:
    addresses = {f"u{i}": f"127.0.0.1:{free_port()}" for i in range(3)}
    print(f"addresses {addresses}")
    nodes = [
        replobj.Node(
            node_id,
            listen=address,
            peers=addresses,
            transport="udp",
            election_timeout=0.4,
            heartbeat_interval=0.05,
        )
        for node_id, address in addresses.items()
    ]
    registers = [node.attach("reg", Register()) for node in nodes]
    async with anyio.create_task_group() as tasks:
        for node in nodes:
            await tasks.start(node.serve)
        await nodes[0].wait_for_leader(10)
        for i in range(30):
            await registers[i % 3].add(f"v{i}" * 100)
        assert await registers[2].snapshot_values() == [f"v{i}" * 100 for i in range(30)]
        with pytest.raises(errors.CommandTooLargeError):
            await registers[0].add("x" * 100_000)
        assert await registers[0].add("still serving") == 31
        for node in nodes:
            await node.aclose()
