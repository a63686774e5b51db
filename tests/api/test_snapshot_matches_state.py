"""A snapshot describes exactly what its bytes hold.

The core advances its applied index when it hands out committed entries; the runtime
applies them a moment later (possibly after a sync, or from the drive loop's backlog). A
snapshot taken in between must not be labelled with the core's index while its bytes hold
the state machine's older one: restoring it would skip entries (seen as
``ApplyOrderError: entry 7 cannot follow applied index 4`` after a restart).
"""

from __future__ import annotations

import anyio
import pytest

from replobj.raft import actions as act
from replobj.raft.node import RaftNode
from replobj.raft.options import RaftOptions, RestoredState
from replobj.runtime_options import RuntimeOptions
from replobj.snapshotting import SnapshotKeeper
from replobj.statemachine import StateMachine
from replobj.storage.memory import MemoryStorage
from replobj.transport.memory import MemoryNetwork
from replobj.waiting import IndexWaiters


@pytest.mark.anyio
async def test_a_snapshot_taken_before_committed_entries_are_applied_holds_the_applied_index() -> (
    None
):
    raft = RaftNode("solo", RestoredState.bootstrap({"solo"}), RaftOptions())
    raft.handle_timeout()  # a lone voter elects itself
    for _ in range(3):
        raft.propose(b"")  # opaque payloads: the core never decodes them
    committed: list[act.ApplyEntries] = []
    for _ in range(4):  # persist and commit what the core asks for
        for action in raft.take_actions():
            if isinstance(action, act.AppendLog):
                last = action.entries[-1]
                raft.handle_log_persisted(last.index, last.term)
            elif isinstance(action, act.ApplyEntries):
                committed.append(action)
    assert raft.applied_index >= 3, "the core should have handed out committed entries"

    machine = StateMachine()
    applied = IndexWaiters(0)  # the runtime applied nothing yet
    keeper = SnapshotKeeper(
        raft,
        MemoryStorage(),
        MemoryNetwork().transport("solo"),
        machine,
        RuntimeOptions(snapshot_entries=1),
        applied,
        lambda: None,
    )
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(keeper.run)  # the keeper's task in a runtime: it takes snapshots
        meta = await keeper.take()
        tasks.cancel_scope.cancel()
    assert meta is None or meta.last_index == machine.applied_index == applied.index
