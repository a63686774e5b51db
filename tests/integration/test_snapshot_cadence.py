"""Automatic snapshots count payload bytes as well as entries.

Calls made together share one log entry, so a node that counted entries alone could hold
millions of commands in its log before a snapshot. A single node on RocksDB with an
entry threshold it never reaches must still snapshot once the applied payloads pass
``snapshot_bytes``, and restart from that snapshot with every value.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from cluster_helpers import Register, free_port

import replobj

pytestmark = pytest.mark.anyio


SECRET = replobj.new_secret()
"""A random cluster secret for this module's nodes."""


def _node(path: Path, address: str) -> tuple[replobj.Node, object]:
    node = replobj.Node(
        "solo",
        secret=SECRET,
        listen=address,
        data_dir=path,
        snapshot_entries=1_000_000,
        snapshot_bytes=8_000,
        election_timeout=0.4,
        heartbeat_interval=0.05,
    )
    return node, node.attach("reg", Register())


async def test_a_node_snapshots_once_applied_payloads_pass_snapshot_bytes(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    node, register = _node(tmp_path / "solo", address)
    values = [f"{number:04d}-" + "x" * 200 for number in range(120)]
    async with node:
        await node.wait_for_leader(5.0)
        async with anyio.create_task_group() as calls:
            for value in values:
                calls.start_soon(register.add, value)  # type: ignore[attr-defined]
        print(f"after {len(values)} calls: {node.status()}")
        assert node.status().applied_index < 1_000_000
        with anyio.move_on_after(10):  # the snapshot is taken in the background
            while node.status().snapshot_index == 0:  # noqa: ASYNC110 - polling node state
                await anyio.sleep(0.01)
        assert node.status().snapshot_index > 0, "no snapshot although 24 KB of payloads applied"
    restarted, register = _node(tmp_path / "solo", address)
    async with restarted:
        await restarted.wait_for_leader(5.0)
        assert sorted(await register.snapshot_values()) == values  # type: ignore[attr-defined]
