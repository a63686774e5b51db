"""A snapshot the driver refuses (its bytes are not a valid state) is asked for again.

The driver checks a received snapshot before committing it; when it refuses one it calls
``handle_snapshot_rejected``: the follower stops waiting for that install, tells the
leader to start over from offset 0, and accepts the next transfer.
"""

from __future__ import annotations

from replobj.raft import (
    ClusterConfig,
    InstallSnapshot,
    RaftNode,
    RaftOptions,
    RestoredState,
    SnapshotMeta,
    WriteSnapshotChunk,
)
from replobj.raft import actions as act
from replobj.raft import messages as msg

VOTERS = frozenset({"a", "b", "c"})


def _follower_installing() -> tuple[RaftNode, SnapshotMeta]:
    node = RaftNode("b", RestoredState.bootstrap(VOTERS), RaftOptions())
    node.take_actions()
    meta = SnapshotMeta(10, 1, ClusterConfig(voters=VOTERS))
    node.handle_message(msg.InstallSnapshot(1, "a", meta, 0, b"garbage", True, 1))
    actions = node.take_actions()
    assert any(isinstance(a, InstallSnapshot) and a.meta == meta for a in actions)
    return node, meta


def _replies(actions: list[act.Action]) -> list[msg.InstallSnapshotReply]:
    return [
        a.message
        for a in actions
        if isinstance(a, act.Send) and isinstance(a.message, msg.InstallSnapshotReply)
    ]


def test_a_rejected_snapshot_is_requested_again_from_offset_zero() -> None:
    node, meta = _follower_installing()
    node.handle_snapshot_rejected(meta)
    replies = _replies(node.take_actions())
    assert [(r.last_index, r.next_offset, r.done) for r in replies] == [(10, 0, False)]
    assert replies[0].sender == "b"
    assert node.applied_index == 0
    assert node.commit_index == 0
    node.handle_message(msg.InstallSnapshot(1, "a", meta, 0, b"good", True, 2))
    actions = node.take_actions()
    assert any(isinstance(a, WriteSnapshotChunk) and a.data == b"good" for a in actions)
    assert any(isinstance(a, InstallSnapshot) for a in actions)


def test_while_installing_the_follower_ignores_the_leader_until_told() -> None:
    node, meta = _follower_installing()
    node.handle_message(msg.InstallSnapshot(1, "a", meta, 0, b"again", True, 2))
    assert not any(isinstance(a, WriteSnapshotChunk) for a in node.take_actions())


def test_rejecting_another_snapshot_than_the_one_installing_does_nothing() -> None:
    node, meta = _follower_installing()
    other = SnapshotMeta(11, 1, meta.config)
    node.handle_snapshot_rejected(other)
    assert not _replies(node.take_actions())
    node.handle_snapshot_installed(meta)
    assert node.applied_index == 10
