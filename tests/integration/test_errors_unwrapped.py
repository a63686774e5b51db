"""An error raised inside ``async with node:`` comes out as itself, not in an exception group.

anyio's task groups wrap everything in groups; the node runs its tasks in one that the
``async with`` body shares. A caller catching ``except CallTimeoutError`` must see it.
"""

from __future__ import annotations

import errno
from typing import Any

import anyio
import pytest
from cluster_helpers import SECRET, Register, free_port

import replobj
from replobj import errors
from replobj.storage.memory import MemoryStorage


def _waiting_for_peers() -> tuple[replobj.Node, Any]:
    """A member of three whose peers never start: no leader, so calls time out."""
    ports = {name: f"127.0.0.1:{free_port()}" for name in ("a", "b", "c")}
    print(f"addresses {ports}")
    node = replobj.Node(
        "a", secret=SECRET, listen=ports["a"], peers=ports, call_timeout=0.3,
        election_timeout=0.2, heartbeat_interval=0.05,
    )  # fmt: skip
    return node, node.attach("reg", Register())


async def test_a_call_timeout_in_the_body_arrives_as_itself() -> None:
    node, proxy = _waiting_for_peers()
    with anyio.fail_after(10), pytest.raises(errors.CallTimeoutError) as raised:
        async with node:
            await proxy.add("x")
    assert type(raised.value) in (errors.CallTimeoutError, errors.ClusterStalledError)


async def test_the_callers_own_error_arrives_as_itself() -> None:
    node, _ = _waiting_for_peers()
    mistake = KeyError("not there")
    with anyio.fail_after(10), pytest.raises(KeyError) as raised:
        async with node:
            raise mistake
    assert raised.value is mistake
    assert raised.value.__context__ is None  # no group shown as "during handling of"


async def test_a_group_raised_by_the_body_stays_that_group() -> None:
    node, _ = _waiting_for_peers()
    group = ExceptionGroup("two callers failed", [ValueError("one"), KeyError("two")])
    with anyio.fail_after(10), pytest.raises(ExceptionGroup) as raised:
        async with node:
            raise group
    assert raised.value is group


async def test_the_node_stopped_and_can_start_again_after_an_error() -> None:
    node, _ = _waiting_for_peers()
    with anyio.fail_after(10), pytest.raises(errors.NodeStoppedError):
        async with node:
            raise errors.NodeStoppedError("stopped elsewhere")
    async with node:  # the first run closed cleanly: the node is not "running already"
        assert node.status().id == "a"


class _SyncFails(MemoryStorage):
    """A memory store whose ``sync`` fails with EIO once :attr:`failing` is set."""

    failing = False

    def sync(self) -> None:
        """Fail (``failing``) or sync."""
        if self.failing:
            raise errors.StorageError(errno.EIO, "/disk/solo: cannot sync: Input/output error")
        super().sync()


async def test_the_nodes_own_failure_arrives_as_itself() -> None:
    storage = _SyncFails()
    node = replobj.Node(
        "solo", secret=SECRET, listen=f"127.0.0.1:{free_port()}", storage=storage,
        election_timeout=0.2, heartbeat_interval=0.05, call_timeout=5.0,
    )  # fmt: skip
    proxy: Any = node.attach("reg", Register())

    async def fail_a_sync() -> None:
        async with node:
            await node.wait_for_leader(5.0)
            storage.failing = True
            await proxy.add("x")  # never acknowledged: the node stops on the failed sync
            await anyio.sleep_forever()

    with anyio.fail_after(10), pytest.raises(errors.StorageError, match="could not sync") as raised:
        await fail_a_sync()
    assert isinstance(raised.value.__cause__, errors.StorageError)
    assert raised.value.__cause__.errno == errno.EIO
