"""Scenarios translated from the reference implementations' tests, where we once diverged.

Each test names its original: etcd-io/raft ``raft_test.go`` and raft-rs
``harness/tests/integration_cases/test_raft.rs``. The translation keeps the scenario and
the expectation, in this harness's terms (a heartbeat timeout is one ``handle_timeout`` of
the leader; ``election_ticks`` of them make an election timeout).
"""

from __future__ import annotations

from replobj.raft import RaftOptions, Refusal, Role
from replobj.raft import messages as msg
from replobj.raft.progress import ReplicationState

from .harness import Cluster

ABC = ["a", "b", "c"]


def test_second_transfer_to_the_same_node_does_not_restart_the_timeout() -> None:
    """raft-rs ``test_leader_transfer_second_transfer_to_same_node`` (etcd
    ``TestLeaderTransferSecondTransferToSameNode``): a repeated request to transfer to the
    target already chosen is ignored, so the transfer is still abandoned one election
    timeout after the *first* request."""
    options = RaftOptions(election_ticks=4)
    cluster = Cluster(ABC, options=options)
    leader = cluster.elect("a")
    cluster.isolate("c")
    assert leader.transfer_leadership("c") is None
    cluster.heartbeat("a")
    assert leader.transfer_leadership("c") is None  # the same target again
    for _ in range(options.election_ticks - 1):
        cluster.heartbeat("a")
    assert leader.role is Role.LEADER
    refusal = leader.propose(b"x")
    assert not isinstance(refusal, Refusal), (
        f"the transfer to c is still in progress {options.election_ticks} heartbeats after "
        f"the first request: {refusal}"
    )


def test_snapshot_that_levels_a_follower_moves_it_to_replicate_at_once() -> None:
    """etcd ``TestSnapshotSucceedViaAppResp`` (etcd-io/etcd#10308; raft-rs
    ``test_snapshot_succeed_via_app_resp``): when the snapshot brings a follower level with
    the leader's last index, its acknowledgement moves it straight to replicating, rather
    than leaving it probing until the next heartbeat."""
    cluster = Cluster(ABC)
    leader = cluster.elect("a")
    cluster.isolate("c")
    cluster.commit("a", [b"1", b"2", b"3"])
    meta = cluster.take_snapshot("a")
    assert meta.last_index == leader.last_index
    cluster.heal()
    cluster.heartbeat("a")  # the heartbeat to c finds the gap: the snapshot follows
    assert cluster.node("c").snapshot == meta
    peer = leader.status().peers["c"]
    assert peer.match_index == leader.last_index
    assert peer.state == ReplicationState.REPLICATE.value, (
        f"c holds the leader's whole log but the leader still feeds it as {peer.state!r}"
    )


def test_transfer_to_a_follower_levelled_by_a_snapshot_completes_without_a_heartbeat() -> None:
    """The consequence of the divergence above: a transfer waiting for a target that a
    snapshot just levelled sends TimeoutNow as soon as the snapshot is acknowledged."""
    cluster = Cluster(ABC)
    leader = cluster.elect("a")
    cluster.isolate("c")
    cluster.commit("a", [b"1", b"2"])
    cluster.take_snapshot("a")
    cluster.heal()
    cluster.timeout("a")  # a heartbeat, in flight: c's answer will start the snapshot
    assert leader.transfer_leadership("c") is None
    cluster.drain("a")
    cluster.deliver_all()  # no further heartbeat
    assert cluster.node("c").snapshot == leader.snapshot
    assert any(isinstance(e.message, msg.TimeoutNow) for e in cluster.delivered)
    assert cluster.node("c").role is Role.LEADER
