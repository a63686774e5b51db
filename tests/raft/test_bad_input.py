"""Bad input (issue 2): broken preconditions are refused clearly and never corrupt state.

Refusals are returned (falsy :class:`Refusal`), odd or malformed messages are ignored,
and driver reports that match nothing are no-ops; each test compares the node's full
protocol state before and after.
"""

from __future__ import annotations

import contextlib

import pytest

from replobj import errors
from replobj.raft import (
    AppendLog,
    ClusterConfig,
    CompactLog,
    Entry,
    NodeStatus,
    ProposalId,
    RaftNode,
    RaftOptions,
    Refusal,
    RefusalReason,
    RestoredState,
    Role,
    SaveHardState,
    SnapshotMeta,
)
from replobj.raft import messages as msg

from .harness import Cluster, of_type, sent

ABC = ["a", "b", "c"]


def _elected() -> Cluster:
    cluster = Cluster(ABC, joining=["d", "e"])
    cluster.elect("a")
    cluster.commit("a", [b"1", b"2"])
    return cluster


def _fingerprint(node: RaftNode) -> tuple[NodeStatus, object, object]:
    return node.status(), node.voted_for, node.entries_between(1, node.last_index + 1)


def _refused(result: object, reason: RefusalReason) -> Refusal:
    assert isinstance(result, Refusal), result
    assert result.reason is reason, result
    assert not result
    assert result.message
    return result


def test_propose_on_follower_is_refused_with_the_leader_hint() -> None:
    """Only the leader appends (§5.3); a follower refuses NOT_LEADER and names the leader."""
    cluster = _elected()
    follower = cluster.node("b")
    before = _fingerprint(follower)
    for result in (follower.propose(b"x"), follower.propose_batch([b"x", b"y"])):
        assert _refused(result, RefusalReason.NOT_LEADER).leader == "a"
    assert not cluster.drain("b")
    assert _fingerprint(follower) == before


def test_propose_without_known_leader_is_refused_no_leader() -> None:
    """With no leader known the refusal is NO_LEADER and carries no hint."""
    cluster = Cluster(ABC)
    refusal = _refused(cluster.node("a").propose(b"x"), RefusalReason.NO_LEADER)
    assert refusal.leader is None
    assert cluster.node("a").last_index == 0


def test_membership_change_on_follower_is_refused() -> None:
    """Membership changes go through the leader only."""
    cluster = _elected()
    follower = cluster.node("c")
    assert _refused(follower.add_member("d"), RefusalReason.NOT_LEADER).leader == "a"
    assert _refused(follower.remove_member("b"), RefusalReason.NOT_LEADER).leader == "a"


def test_second_membership_change_while_one_is_in_flight_is_refused() -> None:
    """Pitfall 14: one change at a time; the next one is accepted once the first is done."""
    cluster = _elected()
    leader = cluster.node("a")
    assert isinstance(leader.add_member("d"), ProposalId)
    before = _fingerprint(leader)
    _refused(leader.add_member("e"), RefusalReason.CONFIG_CHANGE_IN_PROGRESS)
    _refused(leader.remove_member("b"), RefusalReason.CONFIG_CHANGE_IN_PROGRESS)
    assert _fingerprint(leader) == before
    cluster.drain("a")
    cluster.deliver_all()
    for _ in range(3):
        cluster.heartbeat("a")
    assert leader.config == ClusterConfig(voters=frozenset("abcd"))
    assert isinstance(leader.add_member("e"), ProposalId)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda n: n.remove_member("zz"), "not a member"),
        (lambda n: n.add_member("b"), "already a member"),
        (lambda n: n.add_member("a"), "already a member"),
    ],
)
def test_invalid_membership_change_is_refused(change: object, why: str) -> None:
    """Changes that make no sense are refused INVALID_CONFIG_CHANGE, saying why."""
    cluster = _elected()
    leader = cluster.node("a")
    before = _fingerprint(leader)
    assert callable(change)
    refusal = _refused(change(leader), RefusalReason.INVALID_CONFIG_CHANGE)
    assert why in refusal.message
    assert _fingerprint(leader) == before
    assert not of_type(cluster.drain("a"), AppendLog)


def test_adding_an_existing_learner_and_removing_the_last_voter_are_refused() -> None:
    """A learner cannot be added twice as a learner (adding it with ``promote`` marks it
    for promotion instead, see ``test_membership``); the last voter cannot be removed."""
    cluster = _elected()
    leader = cluster.node("a")
    assert isinstance(leader.add_member("d", promote=False), ProposalId)
    cluster.drain("a")
    cluster.deliver_all()
    cluster.heartbeat("a")
    _refused(leader.add_member("d", promote=False), RefusalReason.INVALID_CONFIG_CHANGE)
    single = Cluster(["solo"])
    single.elect("solo")
    refusal = _refused(
        single.node("solo").remove_member("solo"), RefusalReason.INVALID_CONFIG_CHANGE
    )
    assert "last voter" in refusal.message
    assert single.node("solo").config.voters == {"solo"}


def test_stale_term_messages_change_nothing() -> None:
    """§5.1: every kind of message from an older term is harmless."""
    cluster = _elected()
    cluster.heartbeat("a")
    follower = cluster.node("b")
    old = follower.term - 1 if follower.term > 1 else 0
    before = _fingerprint(follower)
    stale: list[msg.Message] = [
        msg.AppendEntries(old, "c", 0, 0, (), 0),
        msg.AppendEntriesReply(old, "c", True, 50),
        msg.InstallSnapshotReply(old, "c", 50, 0, True),
        msg.TimeoutNow(old, "c"),
        msg.ReadIndexReply(old, "c", 1, 50, True),
        msg.RequestVoteReply(old, "c", True),
    ]
    for message in stale:
        actions = cluster.send("c", "b", message)
        assert not of_type(actions, SaveHardState), message
        assert not of_type(actions, AppendLog), message
    assert _fingerprint(follower) == before


def test_messages_from_unknown_senders_do_not_corrupt_the_leader() -> None:
    """Replies from a node outside the configuration are ignored."""
    cluster = _elected()
    leader = cluster.node("a")
    term = leader.term
    before = _fingerprint(leader)
    unknown: tuple[msg.Message, ...] = (
        msg.AppendEntriesReply(term, "zz", True, 99),
        msg.AppendEntriesReply(term, "zz", False, 0, 3, 1, 1),
        msg.InstallSnapshotReply(term, "zz", 99, 0, True),
        msg.ReadIndexReply(term, "zz", 5, 99, True),
    )
    for message in unknown:
        cluster.send("zz", "a", message)
    assert _fingerprint(leader) == before
    assert leader.role is Role.LEADER
    cluster.commit("a", [b"3"])
    assert cluster.applied_payloads("b") == [b"1", b"2", b"3"]


def test_append_entries_far_beyond_the_log_is_rejected_without_change() -> None:
    """§5.3: a prev_index beyond the log fails the consistency check; nothing is stored."""
    cluster = _elected()
    follower = cluster.node("b")
    before = _fingerprint(follower)
    term = follower.term
    far = msg.AppendEntries(term, "a", 1000, term, (Entry(term, 1001),), 2000)
    actions = cluster.send("a", "b", far)
    replies = sent(actions, msg.AppendEntriesReply)
    assert [r.success for r in replies] == [False]
    assert replies[0].hint_index <= follower.last_index
    assert follower.commit_index == before[0].commit_index
    assert follower.entries_between(1, 2000) == before[2]


def test_malformed_messages_are_ignored_and_counted() -> None:
    """Messages no correct peer sends are dropped before touching state, and counted."""
    cluster = _elected()
    follower = cluster.node("b")
    term = follower.term
    before = _fingerprint(follower)
    ignored = follower.ignored_messages
    config = follower.config
    malformed: list[msg.Message] = [
        msg.AppendEntries(-1, "a", 0, 0, (), 0),
        msg.AppendEntries(term, "a", -3, 0, (), 0),
        msg.AppendEntries(term, "a", 0, 0, (Entry(term, 2),), 0),
        msg.AppendEntries(term, "a", 0, 0, (Entry(term, 1), Entry(term, 3)), 0),
        msg.AppendEntries(term, "a", 0, 0, (Entry(term + 5, 1),), 0),
        msg.InstallSnapshot(term, "a", SnapshotMeta(0, 0, config), 0, b"", True),
        msg.InstallSnapshot(term, "a", SnapshotMeta(9, term + 1, config), 0, b"", True),
        msg.InstallSnapshot(term, "a", SnapshotMeta(9, term, config), -4, b"", True),
        msg.AppendEntries(term, "b", 0, 0, (), 0),
    ]
    for message in malformed:
        assert not cluster.send("a", "b", message), message
    assert follower.ignored_messages == ignored + len(malformed)
    assert _fingerprint(follower) == before


def test_replies_claiming_more_than_the_leader_has_do_not_corrupt_progress() -> None:
    """A (buggy) follower acknowledging entries the leader never sent must not push its
    match index past the leader's log, which would stall replication to it forever."""
    cluster = _elected()
    leader = cluster.node("a")
    term = leader.term
    cluster.send("b", "a", msg.AppendEntriesReply(term, "b", True, leader.last_index + 50))
    cluster.send("c", "a", msg.InstallSnapshotReply(term, "c", leader.last_index + 70, 0, True))
    cluster.deliver_all()
    for peer, status in leader.status().peers.items():
        assert status.match_index <= leader.last_index, (peer, status)
    assert leader.commit_index <= leader.last_index
    cluster.commit("a", [b"3"])
    cluster.heartbeat("a")
    assert cluster.applied_payloads("b") == [b"1", b"2", b"3"]
    assert cluster.applied_payloads("c") == [b"1", b"2", b"3"]


def test_snapshot_reply_for_an_unknown_snapshot_is_ignored() -> None:
    """A snapshot reply while no snapshot is being sent leaves the peer's progress alone."""
    cluster = _elected()
    leader = cluster.node("a")
    term = leader.term
    before = leader.status().peers["b"]
    cluster.send("b", "a", msg.InstallSnapshotReply(term, "b", 1, 17, False))
    assert leader.status().peers["b"] == before


def test_unexpected_driver_reports_are_ignored() -> None:
    """Driver reports that match nothing in flight (install, persist, snapshot) are no-ops."""
    cluster = _elected()
    node = cluster.node("b")
    before = _fingerprint(node)
    node.handle_snapshot_installed(SnapshotMeta(5, 1, node.config))
    node.handle_log_persisted(node.last_index + 3, node.term)
    node.handle_snapshot_taken(SnapshotMeta(node.applied_index + 5, node.term, node.config))
    assert not cluster.drain("b")
    assert _fingerprint(node) == before
    cluster.send("a", "b", msg.ReadIndexReply(node.term, "a", 12345, 1, True))
    assert cluster.stores["b"].reads == []


def test_timeout_now_for_a_learner_or_leader_does_nothing() -> None:
    """§3.10: TimeoutNow makes only a voting follower campaign."""
    cluster = _elected()
    leader = cluster.node("a")
    cluster.send("b", "a", msg.TimeoutNow(leader.term, "b"))
    assert leader.role is Role.LEADER
    assert isinstance(leader.add_member("d", promote=False), ProposalId)
    cluster.drain("a")
    cluster.deliver_all()
    cluster.heartbeat("a")
    learner = cluster.node("d")
    assert not sent(cluster.send("a", "d", msg.TimeoutNow(learner.term, "a")), msg.RequestVote)
    assert learner.role is Role.FOLLOWER


def test_options_reject_nonsense_limits() -> None:
    """Options validate in their constructor and name the bad field."""
    for field in ("max_append_entries", "snapshot_chunk_bytes", "election_ticks"):
        with pytest.raises(ValueError, match=field):
            RaftOptions(**{field: 0})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="promotion_lag"):
        RaftOptions(promotion_lag=-1)


@pytest.mark.parametrize("reason", list(RefusalReason), ids=lambda r: r.value)
def test_error_for_refusal_maps_every_reason(reason: RefusalReason) -> None:
    """Every RefusalReason maps to its replobj.errors exception, keeping message and hint."""
    expected = {
        RefusalReason.NOT_LEADER: errors.NotLeaderError,
        RefusalReason.NO_LEADER: errors.NoLeaderError,
        RefusalReason.LEADER_NOT_READY: errors.LeaderNotReadyError,
        RefusalReason.CONFIG_CHANGE_IN_PROGRESS: errors.ConfigChangeInProgressError,
        RefusalReason.INVALID_CONFIG_CHANGE: errors.InvalidConfigChangeError,
        RefusalReason.TRANSFER_IN_PROGRESS: errors.TransferInProgressError,
        RefusalReason.INVALID_ARGUMENT: errors.RaftRefusedError,
    }[reason]
    refusal = Refusal(reason, f"because {reason.value}", leader="b")
    error = errors.error_for_refusal(refusal)
    assert type(error) is expected
    assert isinstance(error, errors.ReplObjError)
    assert str(error) == f"because {reason.value}"
    assert error.leader == "b"
    assert error.refusal is refusal


def test_value_types_validate_in_their_constructor() -> None:
    """Value types refuse impossible states when built (h11 style)."""
    with pytest.raises(ValueError, match="index 1"):
        Entry(1, 0)
    with pytest.raises(ValueError, match="term"):
        Entry(0, 1)
    with pytest.raises(ValueError, match="voter and learner"):
        ClusterConfig(voters=frozenset("ab"), learners=frozenset("b"))
    with pytest.raises(ValueError, match="auto_promote"):
        ClusterConfig(voters=frozenset("a"), auto_promote=frozenset("z"))
    with pytest.raises(ValueError, match="outgoing voter"):
        ClusterConfig(voters=frozenset("a"), learners=frozenset("b"), old_voters=frozenset("b"))
    for garbage in (b"not json", b'{"voters": [1], "learners": []}', b'{"learners": []}'):
        with pytest.raises(ValueError, match="malformed"):
            ClusterConfig.decode(garbage)
    empty = ClusterConfig()
    assert not empty.has_quorum({"a"})
    assert empty.quorum_index({"a": 5}) == 0


def test_restored_entries_must_follow_the_snapshot() -> None:
    """A restored log that does not start right after its snapshot is refused at startup."""
    config = ClusterConfig(voters=frozenset(ABC))
    bad = RestoredState(snapshot=SnapshotMeta(5, 1, config), entries=(Entry(1, 3),))
    with pytest.raises(ValueError, match="right after the snapshot"):
        RaftNode("a", bad)


def test_stale_read_request_gets_a_negative_reply() -> None:
    """A ReadIndexRequest from an older term is answered negatively (the follower retries)."""
    cluster = _elected()
    cluster.heartbeat("a")
    term = cluster.node("a").term
    actions = cluster.send("b", "a", msg.ReadIndexRequest(term - 1, "b", 8))
    assert [(m.request_id, m.ok) for m in sent(actions, msg.ReadIndexReply)] == [(8, False)]


def test_empty_proposal_batch_appends_nothing() -> None:
    """``propose_batch([])`` must not emit an empty AppendLog (whose obligation refers to
    ``entries[0]`` and ``entries[-1]``); it returns no ids (or refuses) and changes nothing."""
    cluster = _elected()
    leader = cluster.node("a")
    before = _fingerprint(leader)
    result = leader.propose_batch([])
    assert result == [] or isinstance(result, Refusal)
    actions = leader.take_actions()
    assert all(a.entries for a in of_type(actions, AppendLog)), actions
    assert _fingerprint(leader) == before


def test_snapshot_taken_with_a_meta_that_does_not_match_the_log_changes_nothing() -> None:
    """``handle_snapshot_taken`` with metadata that contradicts the log (wrong term) breaks a
    precondition: it may raise, but must not compact the log under a false term."""
    cluster = _elected()
    leader = cluster.node("a")
    index = leader.applied_index - 1
    true_term = leader.term_at(index)
    assert true_term is not None
    forged = SnapshotMeta(index, true_term + 5, leader.config)
    with contextlib.suppress(ValueError, errors.ReplObjError):
        leader.handle_snapshot_taken(forged)
    assert leader.snapshot != forged
    assert leader.term_at(index) == true_term
    assert not of_type(leader.take_actions(), CompactLog)
