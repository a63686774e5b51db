"""Disk faults: a failed fsync or a full disk stops the member; nothing unsynced is acknowledged.

End to end, on member processes whose RocksDB directories sit on the power-loss
filesystem with its disk-error switch (:meth:`PowerLossMount.fail_disk`): the member
whose disk fails exits with a non-zero status and its log names its data directory, the
others keep serving, and once the disk is healed the member restarts on its data
directory and catches up; every acknowledged append is on every replica exactly once.
In process: a storage whose ``sync`` or ``write`` raises stops the node and no call is
acknowledged after it; the error leaves ``async with node`` as a ``StorageError`` naming
the node (a cancellation escaped before the fix); a write failing during a burst of calls
loses no acknowledged call (127 were lost before the fix).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import FrameType
from typing import Any

import anyio
import pytest
from cluster_helpers import Register, free_port
from proc_workload import MEMBER_PROGRAM, AppendWorkload

import replobj
from replobj import errors
from replobj.demo import ProcessCluster
from replobj.storage import MemoryStorage, WriteBatch
from replobj.testing.nemesis.power import PowerRig

SECRET = replobj.new_secret()
"""A random cluster secret for this module's nodes."""


async def _wait_exited(cluster: ProcessCluster, node: str, timeout: float) -> int:
    member = cluster.members[node]
    with anyio.fail_after(timeout):
        await member.exited.wait()
        return await member.process.wait()


@pytest.mark.parametrize(
    ("anyio_backend", "victim", "fault", "reboot"),
    [
        ("asyncio", "leader", "fsync-eio", False),
        ("trio", "follower", "write-enospc", True),
    ],
)
@pytest.mark.anyio
async def test_a_failing_disk_stops_its_member_and_loses_no_acknowledged_write(
    tmp_path: Path, anyio_backend: str, victim: str, fault: str, reboot: bool
) -> None:
    rig = PowerRig(tmp_path / "disks")
    cluster = ProcessCluster(
        tmp_path,
        MEMBER_PROGRAM,
        backend=anyio_backend,
        election_timeout=0.4,
        before_spawn=rig.before_spawn,
    )
    print(f"members on {anyio_backend}; data, logs and disks under {tmp_path}")
    try:
        async with cluster:
            await _fail_one_disk_under_load(cluster, rig, victim, fault, reboot)
    finally:
        print(cluster.describe(log_lines=25))
        with anyio.CancelScope(shield=True):
            await rig.close()


async def _fail_one_disk_under_load(
    cluster: ProcessCluster, rig: PowerRig, victim: str, fault: str, reboot: bool
) -> None:
    nodes = ["a", "b", "c"]
    await cluster.start(nodes)
    leader = await cluster.wait_for_leader()
    target = leader if victim == "leader" else min(set(nodes) - {leader})
    survivors = sorted(set(nodes) - {target})
    workload = AppendWorkload(cluster)
    stop = anyio.Event()
    disk = rig.mounts[target]
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(workload.run, nodes, stop)
        await workload.wait_acknowledged(30)
        if fault == "fsync-eio":
            disk.fail_disk(fsync_errno=errno.EIO)
        else:
            disk.fail_disk(fsync_errno=0, write_errno=errno.ENOSPC)
        print(f"{fault} on {target} ({victim}) after {len(workload.acknowledged)} acks")
        code = await _wait_exited(cluster, target, timeout=15.0)
        before_restart = len(workload.acknowledged)
        await cluster.wait_for_leader(survivors, newer_than=target, timeout=20.0)
        await workload.wait_acknowledged(before_restart + 30)
        stop.set()
    injected = disk.disk_faults()
    print(f"{target} exited with {code}; disk switch: {injected}")
    assert code != 0, f"{target} exited cleanly although its disk failed"
    assert injected.fsyncs_failed + injected.writes_failed >= 1
    log = cluster.specs[target].log_path.read_text(errors="replace")
    data_dir = str(cluster.specs[target].data_dir)
    expected_errno = "Input/output error" if fault == "fsync-eio" else "No space left on device"
    assert data_dir in log, log[-3000:]
    print(f"{expected_errno!r} in {target}'s log: {expected_errno in log}")
    await workload.assert_exactly_once(survivors)

    disk.heal_disk()
    if reboot:
        lost = await rig.cut(target)
        print(f"power cut of {target}'s disk discarded {lost.dirty_bytes} unsynced bytes")
    await cluster.restart(target)
    await cluster.wait_caught_up(nodes, timeout=30.0)
    journal = await workload.assert_exactly_once(nodes)
    print(
        f"{len(workload.acknowledged)} acknowledged appends, {len(workload.unanswered)} "
        f"unanswered, journal {len(journal)}: none lost on any replica"
    )
    assert len(journal) >= before_restart + 30


class FailingStorage(MemoryStorage):
    """A memory store whose ``sync`` or ``write`` fails once :attr:`failing` is set."""

    def __init__(self) -> None:
        """Start healthy."""
        super().__init__()
        self.failing: str | None = None
        self.failed_calls = 0
        self.eager_writes = 0
        self.after_power_loss: MemoryStorage | None = None

    def close(self) -> None:
        """Close, keeping what a power cut now would leave in :attr:`after_power_loss`."""
        self.after_power_loss = self.crash()

    def sync(self) -> None:
        """Fail with EIO (``failing == "sync"``) or sync."""
        if self.failing == "sync":
            self.failed_calls += 1
            raise errors.StorageError(errno.EIO, "/disk/solo: cannot sync: Input/output error")
        super().sync()

    def write(self, batch: WriteBatch) -> None:
        """Fail with ENOSPC (``failing == "write"``, or ``"burst"``: the second write the
        runtime makes from a caller's task to flush a burst of calls early) or write."""
        if self.failing == "burst" and _called_from("_flush_eagerly"):
            self.eager_writes += 1
            if self.eager_writes == 2:
                self.failed_calls += 1
                raise errors.StorageError(errno.ENOSPC, "/disk/solo: No space left on device")
        if self.failing == "write":
            self.failed_calls += 1
            raise errors.StorageError(
                errno.ENOSPC, "/disk/solo: cannot write: No space left on device"
            )
        super().write(batch)


def _called_from(function: str) -> bool:
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == function:
            return True
        frame = frame.f_back
    return False


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _solo(storage: MemoryStorage) -> tuple[replobj.Node, Any]:
    node = replobj.Node(
        "solo",
        secret=SECRET,
        listen=f"127.0.0.1:{free_port()}",
        storage=storage,
        election_timeout=0.2,
        heartbeat_interval=0.05,
        call_timeout=5.0,
    )
    return node, node.attach("reg", Register())


async def _serve_until_it_fails(
    node: replobj.Node, client: Callable[[], Coroutine[Any, Any, None]]
) -> list[BaseException]:
    """Serve ``node`` with ``client`` running until the node stops; what it raised."""
    try:
        async with anyio.create_task_group() as tasks:
            await tasks.start(node.serve)
            tasks.start_soon(client)
            with anyio.fail_after(10.0):
                await anyio.sleep_forever()
    except BaseExceptionGroup as group:
        return _leaves(group)
    raise AssertionError("the node kept serving for 10 s after its storage failed")


@pytest.mark.parametrize("failing", ["sync", "write"])
@pytest.mark.anyio
async def test_a_node_whose_storage_fails_stops_and_acknowledges_nothing_unsynced(
    failing: str,
) -> None:
    storage = FailingStorage()
    node, register = _solo(storage)
    acknowledged: list[str] = []

    async def client() -> None:
        await node.wait_for_leader(5.0)
        await register.add("before")
        acknowledged.append("before")
        storage.failing = failing
        for number in range(3):
            await register.add(f"after-{number}")
            acknowledged.append(f"after-{number}")

    leaves = await _serve_until_it_fails(node, client)
    print(f"{failing} failed {storage.failed_calls} times; serve raised {leaves!r}")
    assert storage.failed_calls >= 1
    assert [type(leaf) for leaf in leaves] == [errors.StorageError], leaves
    assert acknowledged == ["before"], f"acknowledged after the {failing} failed: {acknowledged}"
    with pytest.raises(errors.NodeStoppedError):
        await register.add("after the stop")

    assert storage.after_power_loss is not None, "the node did not close its storage"
    restarted, register = _solo(storage.after_power_loss)
    async with restarted:
        await restarted.wait_for_leader(5.0)
        values = await register.snapshot_values()
    assert set(acknowledged) <= set(values), f"lost: {set(acknowledged) - set(values)}"


@pytest.mark.parametrize("failing", ["sync", "write"])
@pytest.mark.anyio
async def test_a_storage_failure_leaves_async_with_node_as_a_storage_error_naming_the_node(
    failing: str, caplog: pytest.LogCaptureFixture
) -> None:
    storage = FailingStorage()
    node, register = _solo(storage)
    escaped: BaseException | None = None
    try:
        async with node:
            await node.wait_for_leader(5.0)
            await register.add("before")
            storage.failing = failing
            with anyio.fail_after(10.0):
                await register.add("after")
    except BaseException as error:  # what escapes is the point of the test
        escaped = error
    print(f"escaped from `async with node`: {escaped!r}")
    assert escaped is not None, "the node went on after its storage failed"
    leaves = _leaves(escaped)
    assert [type(leaf) for leaf in leaves] == [errors.StorageError], leaves
    critical = [r.getMessage() for r in caplog.records if r.levelno >= logging.CRITICAL]
    assert any("solo" in message and "/disk/solo" in message for message in critical), critical


async def _burst_with_one_failed_write() -> tuple[list[str], list[str], list[BaseException], bool]:
    """256 concurrent calls on a single node whose second early-flush write fails; returns
    the acknowledged calls, those lost by a power cut afterwards, and why the node stopped
    (nothing: no write failed, when other work on the loop drained the calls before they
    made two eager flushes), and whether a write failed."""
    storage = FailingStorage()
    node, register = _solo(storage)
    acknowledged: list[str] = []

    async def call(value: str) -> None:
        with contextlib.suppress(Exception):
            await register.add(value)
            acknowledged.append(value)

    stopped_by: list[BaseException] = []
    try:
        async with anyio.create_task_group() as tasks:
            await tasks.start(node.serve)
            await node.wait_for_leader(5.0)
            await call("first")
            storage.failing = "burst"
            with anyio.fail_after(20.0):
                async with anyio.create_task_group() as calls:
                    for number in range(256):
                        calls.start_soon(call, f"v{number}")
            await node.aclose()
    except BaseExceptionGroup as group:
        stopped_by = _leaves(group)
    if storage.failed_calls == 0:  # the loop drained the burst before two eager flushes
        return acknowledged, [], stopped_by, False
    assert storage.failed_calls == 1
    assert storage.after_power_loss is not None
    restarted, register = _solo(storage.after_power_loss)
    async with restarted:
        await restarted.wait_for_leader(5.0)
        values = set(await register.snapshot_values())
    return acknowledged, sorted(set(acknowledged) - values), stopped_by, True


@pytest.mark.anyio
async def test_a_write_failing_under_a_burst_of_calls_loses_no_acknowledged_call() -> None:
    failed_bursts = 0
    for attempt in range(12):
        acknowledged, lost, stopped_by, failed = await _burst_with_one_failed_write()
        print(f"attempt {attempt}: {len(acknowledged)} acknowledged, {failed=}, {stopped_by=}")
        assert not lost, f"{len(lost)} acknowledged calls lost after a failed write: {lost[:5]}"
        failed_bursts += failed
        if failed_bursts == 3:
            break
    assert failed_bursts == 3, "bursts rarely failed a write: did _flush_eagerly change?"
