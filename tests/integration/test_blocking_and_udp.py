"""BlockingNode from plain threads, and whole clusters over the UDP transport."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
from cluster_helpers import Register, free_port

import replobj
from replobj import errors

SECRET = replobj.new_secret()
"""A random cluster secret for this module's nodes."""


def test_blocking_nodes_return_values_directly(tmp_path: Path) -> None:
    addresses = {f"b{i}": f"127.0.0.1:{free_port()}" for i in range(3)}
    print(f"addresses {addresses}, data under {tmp_path}")
    nodes = [
        replobj.BlockingNode(
            node_id,
            secret=SECRET,
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
        deadline = time.monotonic() + 10
        while sum(node.is_leader for node in nodes) != 1:  # one leader, seen from threads
            assert time.monotonic() < deadline, [node.status() for node in nodes]
            time.sleep(0.02)
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
            secret=SECRET,
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


@pytest.mark.anyio
async def test_udp_member_restarted_with_old_peers_catches_up_with_a_newer_leader(
    tmp_path: Path,
) -> None:
    """u0 restarts knowing only the founders while u3, added later, leads: u3's
    authenticated datagrams must teach u0 where to answer, or u0 never catches up."""
    founders = {f"u{i}": f"127.0.0.1:{free_port()}" for i in range(3)}
    late = f"127.0.0.1:{free_port()}"
    print(f"founders {founders}, u3 at {late}, data under {tmp_path}")

    def node(node_id: str, listen: str, peers: dict[str, str], join: bool = False) -> replobj.Node:
        return replobj.Node(
            node_id,
            secret=SECRET,
            listen=listen,
            peers=peers,
            join=join,
            data_dir=tmp_path / node_id,
            transport="udp",
            election_timeout=0.4,
            heartbeat_interval=0.05,
            call_timeout=5.0,
        )

    nodes = {n: node(n, a, founders) for n, a in founders.items()}
    nodes["u3"] = node("u3", late, {**founders, "u3": late}, join=True)
    registers = {n: member.attach("reg", Register()) for n, member in nodes.items()}
    async with anyio.create_task_group() as tasks:
        for member in nodes.values():
            await tasks.start(member.serve)
        leader = await nodes["u0"].wait_for_leader(10)
        await registers["u1"].add("before")
        await nodes[leader].add_member("u3", late)
        await nodes["u1"].remove_member("u2")
        await nodes["u2"].aclose()
        with anyio.fail_after(15):
            while (leader := await nodes["u1"].wait_for_leader(10)) != "u3":
                await nodes[leader].transfer_leadership("u3")
        await nodes["u0"].aclose()
        for value in range(5):
            await registers["u3"].add(f"while u0 was down {value}")
        nodes["u0"] = node("u0", founders["u0"], founders)
        registers["u0"] = nodes["u0"].attach("reg", Register())
        await tasks.start(nodes["u0"].serve)
        target = nodes["u3"].status().commit_index
        with anyio.fail_after(15):
            while nodes["u0"].status().applied_index < target:
                await registers["u3"].add("nudge")
        assert (await registers["u0"].snapshot_values.local())[:6] == [
            "before",
            *(f"while u0 was down {value}" for value in range(5)),
        ]
        for name in ("u0", "u1", "u3"):
            await nodes[name].aclose()
