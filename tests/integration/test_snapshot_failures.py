"""A state that cannot be pickled must not take the node down (RAFT-PITFALLS 28)."""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import pytest
from cluster_helpers import free_port

import replobj
from replobj.errors import UnpicklableStateError

SECRET = replobj.new_secret()
"""A random cluster secret for this module's nodes."""


@replobj.replicated
class Holder:
    """Items; a lock among them makes the state unpicklable."""

    def __init__(self) -> None:
        self.items: list[object] = []

    def add_lock(self) -> int:
        """Keep a lock (cannot be pickled)."""
        self.items.append(threading.Lock())
        return len(self.items)

    def drop_locks(self) -> int:
        """Forget every lock."""
        self.items = [item for item in self.items if isinstance(item, int)]
        return len(self.items)

    def add(self, value: int) -> int:
        """Keep ``value``."""
        self.items.append(value)
        return len(self.items)


@pytest.mark.anyio
async def test_an_unpicklable_state_skips_snapshots_and_the_node_keeps_serving(
    tmp_path: Path, anyio_backend: str
) -> None:
    address = f"127.0.0.1:{free_port()}"
    print(f"node on {address} ({anyio_backend}), data under {tmp_path}")
    node = replobj.Node(
        "n0",
        secret=SECRET,
        listen=address,
        peers={"n0": address},
        data_dir=tmp_path / "n0",
        snapshot_entries=3,
        election_timeout=0.4,
        heartbeat_interval=0.05,
        call_timeout=5.0,
    )
    holder = node.attach("h", Holder())
    async with node:
        assert await holder.add_lock() == 1
        for value in range(6):
            assert await holder.add(value) == value + 2
        status = node.status()
        assert status.snapshot_index == 0
        assert status.snapshot_error is not None
        assert "'h'" in status.snapshot_error
        with pytest.raises(UnpicklableStateError, match="'h'"):
            await node.snapshot()
        assert await holder.drop_locks() == 6
        for value in range(4):
            await holder.add(value)
        with anyio.fail_after(10):
            while node.status().snapshot_index == 0:
                await holder.add(0)
        assert node.status().snapshot_error is None
