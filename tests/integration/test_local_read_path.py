"""The inlined fast path of ``await proxy.q.local()`` keeps every rule of the slow one.

A local read skips its checkpoint while less than ``FAIR_SLICE`` passed since the node
last yielded. These tests open that window on purpose (as if the node had just yielded)
and check that it never lets through what the slow path refuses: a read on a stopped
node, the first read after a restart (which must catch up first: local reads never go
backwards), a read of a diverged object, or a query seeing a command's entry.
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
from cluster_helpers import count_barriers, free_port

import replobj
from replobj import errors
from replobj.entry_context import run_in_entry

pytestmark = pytest.mark.anyio

SECRET = replobj.new_secret()
"""A random cluster secret for this module's nodes."""


@replobj.replicated(name="tests.local_path.Clock")
class Clock:
    """A query that asks for the current entry (only commands may)."""

    def __init__(self) -> None:
        self.ticks = 0

    def tick(self) -> int:
        """Count one tick."""
        self.ticks += 1
        return self.ticks

    @replobj.query
    def entry_index(self) -> int:
        """The current entry's index (raises in a query)."""
        return replobj.current_entry().index

    @replobj.query
    def plus(self, a: int, *, b: int = 0) -> int:
        """Ticks plus the arguments."""
        return self.ticks + a + b


def _node(data_dir: Path, port: int) -> replobj.Node:
    return replobj.Node(
        "n0", secret=SECRET, listen=f"127.0.0.1:{port}", data_dir=data_dir, election_timeout=0.4
    )


def _open_window(node: replobj.Node) -> None:
    """As if a call of ``node`` had just yielded: the next local reads skip the checkpoint."""
    node._local_due = time.monotonic() + 3600


async def test_the_fast_path_refuses_a_stopped_node_and_catches_up_after_a_restart(
    tmp_path: Path,
) -> None:
    port = free_port()
    node = _node(tmp_path / "n0", port)
    clock = node.attach("clock", Clock())
    async with anyio.create_task_group() as tasks:
        await tasks.start(node.serve)
        await node.wait_for_leader()
        assert await clock.tick() == 1
        assert await clock.plus.local(1, b=2) == 4
        await node.aclose()
        _open_window(node)
        with pytest.raises(errors.NodeStoppedError):
            await clock.plus.local(0)

        barriers = count_barriers(node)
        await tasks.start(node.serve)  # restarted on its data: must catch up first
        _open_window(node)
        assert await clock.plus.local(0) == 1
        assert len(barriers) == 1
        assert await clock.plus.local(0) == 1
        assert len(barriers) == 1  # only the first read after the restart
        await node.aclose()


async def test_the_fast_path_hides_the_entry_and_refuses_a_diverged_object(
    tmp_path: Path,
) -> None:
    node = _node(tmp_path / "n0", free_port())
    clock = node.attach("clock", Clock())
    async with anyio.create_task_group() as tasks:
        await tasks.start(node.serve)
        await node.wait_for_leader()
        await clock.tick()
        _open_window(node)

        async def read_inside_an_entry() -> None:
            # A task started while an entry is current inherits it in its context.
            with pytest.raises(errors.NoCurrentEntryError):
                await clock.entry_index.local()

        async with anyio.create_task_group() as readers:
            run_in_entry((5, 1, 0.0, 0), readers.start_soon, (read_inside_an_entry,), {})
        with pytest.raises(errors.NoCurrentEntryError):
            await clock.entry_index.local()
        node.diverged["clock"] = errors.ClassMismatchError("diverged on purpose")
        _open_window(node)
        with pytest.raises(errors.ClassMismatchError):
            await clock.plus.local(0)
        node.diverged.clear()
        assert await clock.plus.local(0) == 1
        await node.aclose()
