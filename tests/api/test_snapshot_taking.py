"""Taking snapshots in a worker thread: stopping it, and taking turns with received ones."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import AsyncIterator

import anyio
import anyio.lowlevel
import pytest

from replobj import errors
from replobj.pickling import StopFlag
from replobj.raft import actions as act
from replobj.raft.node import RaftNode
from replobj.raft.options import RaftOptions, RestoredState
from replobj.raft.types import SnapshotMeta
from replobj.runtime_options import RuntimeOptions
from replobj.snapshot_taker import ApplyGate
from replobj.snapshot_thread import SWITCH_INTERVAL, run_stoppable
from replobj.snapshotting import SnapshotKeeper
from replobj.statemachine import StateMachine
from replobj.storage.memory import MemoryStorage
from replobj.transport.memory import MemoryNetwork
from replobj.waiting import IndexWaiters

from .objects import KV

pytestmark = pytest.mark.anyio


async def test_a_cancelled_call_returns_only_once_the_work_has_stopped() -> None:
    entered, stopped = threading.Event(), []

    def work(stop: StopFlag) -> None:
        entered.set()
        assert isinstance(stop, threading.Event)
        stopped.append(stop.wait(10))  # the cancellation sets it

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run_stoppable, work)
        assert await anyio.to_thread.run_sync(entered.wait, 10)
        tasks.cancel_scope.cancel()
    assert stopped == [True]


async def test_work_cancelled_before_its_thread_began_never_runs() -> None:
    ran: list[bool] = []
    with anyio.CancelScope() as scope:
        scope.cancel()
        await run_stoppable(lambda stop: ran.append(True))
    assert scope.cancelled_caught
    assert ran == []


async def test_the_work_s_result_and_errors_come_back_as_they_are() -> None:
    assert await run_stoppable(lambda stop: 42) == 42

    def fail(stop: StopFlag) -> None:
        raise errors.UnpicklableStateError("no")

    with pytest.raises(errors.UnpicklableStateError, match="no"):
        await run_stoppable(fail)


async def test_threads_switch_more_often_while_the_work_runs() -> None:
    before = sys.getswitchinterval()
    during = await run_stoppable(lambda stop: sys.getswitchinterval())
    assert during == pytest.approx(min(before, SWITCH_INTERVAL))
    assert sys.getswitchinterval() == pytest.approx(before)


def test_the_gate_holds_entries_while_closed_and_applies_them_in_order() -> None:
    applied: list[tuple[object, ...]] = []
    gate = ApplyGate(applied.append)  # type: ignore[arg-type]
    gate.apply((1,))  # type: ignore[arg-type]
    gate.close()
    gate.apply((2,))  # type: ignore[arg-type]
    gate.apply((3,))  # type: ignore[arg-type]
    assert applied == [(1,)]
    gate.open()
    gate.apply((4,))  # type: ignore[arg-type]
    assert applied == [(1,), (2,), (3,), (4,)]


def _keeper(chunk_bytes: int = 1 << 20) -> tuple[SnapshotKeeper, RaftNode, StateMachine, KV]:
    """A lone voter's keeper with three entries applied and a table of 50 rows."""
    raft = RaftNode("solo", RestoredState.bootstrap({"solo"}), RaftOptions())
    raft.handle_timeout()
    for _ in range(2):
        raft.propose(b"")
    machine = StateMachine()
    kv = machine.attach("kv", KV())
    applied = IndexWaiters(0)
    for _ in range(4):
        for action in raft.take_actions():
            if isinstance(action, act.AppendLog):
                last = action.entries[-1]
                raft.handle_log_persisted(last.index, last.term)
            elif isinstance(action, act.ApplyEntries):
                for entry in action.entries:
                    machine.apply(entry)
                    applied.advance(entry.index)
    assert applied.index == 3
    kv.data = {f"k{i}": i for i in range(50)}
    options = RuntimeOptions(snapshot_entries=1, snapshot_chunk_bytes=chunk_bytes)
    storage = MemoryStorage()
    keeper = SnapshotKeeper(
        raft, storage, MemoryNetwork().transport("solo"), machine, options, applied, lambda: None
    )
    return keeper, raft, machine, kv


@contextlib.asynccontextmanager
async def running(keeper: SnapshotKeeper) -> AsyncIterator[None]:
    """The keeper's task, as a runtime runs it (it takes the snapshots)."""
    async with anyio.create_task_group() as tasks:
        await tasks.start(keeper.run)
        yield
        tasks.cancel_scope.cancel()


def _received() -> tuple[SnapshotMeta, bytes]:
    """A snapshot of another replica, at a later index, with other rows."""
    source = StateMachine()
    source.attach("kv", KV()).data = {"received": 1}
    config = RestoredState.bootstrap({"solo"}).snapshot.config
    return SnapshotMeta(50, 1, config), source.snapshot()


async def test_a_local_snapshot_waits_while_a_received_one_is_staged() -> None:
    keeper, _, _, kv = _keeper()
    meta, data = _received()
    keeper.stage_chunk(act.WriteSnapshotChunk(meta, 0, data[:10]))
    async with running(keeper):
        assert await keeper.take() is None  # beginning a writer would abort the staged one
        keeper.stage_chunk(act.WriteSnapshotChunk(meta, 10, data[10:]))
        await keeper.install(act.InstallSnapshot(meta, keep_log=False))
    assert kv.data == {"received": 1}


async def test_a_staged_snapshot_that_stopped_arriving_gives_way_and_is_asked_for_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keeper, raft, _, kv = _keeper()
    asked_again: list[SnapshotMeta] = []
    monkeypatch.setattr(raft, "handle_snapshot_rejected", asked_again.append)
    meta, data = _received()
    keeper.stage_chunk(act.WriteSnapshotChunk(meta, 0, data[:10]))
    keeper._staged_at -= 10 * RuntimeOptions().election_timeout  # as if long ago
    async with running(keeper):
        taken = await keeper.take()
        assert taken is not None
        assert taken.last_index == 3
        keeper.stage_chunk(act.WriteSnapshotChunk(meta, 10, data[10:]))  # its start is gone
        await keeper.install(act.InstallSnapshot(meta, keep_log=False))
    assert asked_again == [meta]
    assert kv.data == {f"k{i}": i for i in range(50)}


async def test_a_local_snapshot_being_written_gives_way_to_a_received_one() -> None:
    keeper, _, _, kv = _keeper(chunk_bytes=64)
    meta, data = _received()
    taker = keeper._taker
    outcome: list[SnapshotMeta | None] = []

    async def take() -> None:
        outcome.append(await keeper.take())

    async with running(keeper):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(take)
            with anyio.fail_after(10):
                while taker._writer is None:  # begun, then a checkpoint after each chunk
                    await anyio.lowlevel.checkpoint()
            keeper.stage_chunk(act.WriteSnapshotChunk(meta, 0, data))
        assert outcome == [None]
        assert keeper._storage.snapshot_meta().last_index == 0
        await keeper.install(act.InstallSnapshot(meta, keep_log=False))
    assert kv.data == {"received": 1}


async def test_asking_a_stopped_keeper_for_a_snapshot_fails_instead_of_waiting() -> None:
    keeper, _, _, _ = _keeper()
    outcome: list[BaseException] = []

    async def take() -> None:
        try:
            await keeper.take()
        except errors.NodeStoppedError as exc:
            outcome.append(exc)

    taker = keeper._taker
    async with anyio.create_task_group() as tasks, running(keeper):
        tasks.start_soon(take)
        with anyio.fail_after(10):
            while not (taker._requests or taker._serving):  # asked for, not yet taken
                await anyio.lowlevel.checkpoint()
        # the keeper stops now (a node that stops), before its pickling thread could end
    assert len(outcome) == 1
    with pytest.raises(errors.NodeStoppedError):
        await keeper.take()
