"""Extensions from Ongaro's thesis: pre-vote, leader stickiness, check-quorum, ReadIndex and
leadership transfer. Each test names the thesis section whose sentences it checks.

Membership is in ``test_membership.py``; snapshots, restart, durability and replication
limits are in ``test_log_management.py``.
"""

from __future__ import annotations

from replobj.raft import (
    RaftOptions,
    ReadFailed,
    ReadReady,
    Refusal,
    RefusalReason,
    Role,
    SaveHardState,
)
from replobj.raft.messages import (
    AppendEntries,
    AppendEntriesReply,
    ReadIndexReply,
    ReadIndexRequest,
    RequestVote,
    RequestVoteReply,
    TimeoutNow,
)

from .harness import Cluster, of_type, sent

ABC = ["a", "b", "c"]


def _elected(options: RaftOptions | None = None) -> Cluster:
    cluster = Cluster(ABC, options=options)
    cluster.elect("a")
    return cluster


# --- thesis §9.6 pre-vote ----------------------------------------------------------------


def test_thesis_9_6_pre_candidate_keeps_its_term_and_vote() -> None:
    """§9.6: a pre-candidate asks whether it *could* win before incrementing its term, so
    its term and vote stay unchanged and nothing is saved."""
    cluster = Cluster(ABC)
    actions = cluster.timeout("a")
    node = cluster.node("a")
    assert node.role is Role.PRE_CANDIDATE
    assert node.term == 0
    assert node.voted_for is None
    assert not of_type(actions, SaveHardState)
    requests = sent(actions, RequestVote)
    assert {(r.term, r.pre_vote) for r in requests} == {(1, True)}


def test_thesis_9_6_partitioned_node_rejoining_does_not_bump_the_term() -> None:
    """§9.6: "a server that has been partitioned ... will not be able to increment its term,
    since it cannot receive permission from a majority", so when it rejoins the leader
    keeps leading in the same term."""
    cluster = _elected()
    term = cluster.node("a").term
    cluster.isolate("c")
    for _ in range(5):
        cluster.timeout("c")
        cluster.deliver_all()
    assert cluster.node("c").term == term
    assert cluster.node("c").role is Role.PRE_CANDIDATE
    cluster.heal()
    cluster.timeout("c")
    cluster.deliver_all()
    cluster.heartbeat("a")
    for node_id in ABC:
        assert cluster.node(node_id).term == term, node_id
    assert cluster.node("a").role is Role.LEADER
    assert cluster.node("c").role is Role.FOLLOWER
    assert cluster.node("c").leader == "a"


def test_thesis_9_6_pre_vote_then_real_election_when_leader_is_gone() -> None:
    """§9.6: once a majority has not heard from the leader, a pre-vote succeeds and exactly
    one real election follows (the term grows by one)."""
    cluster = _elected()
    term = cluster.node("a").term
    cluster.crash("a")
    cluster.elect("b")
    assert cluster.node("b").term == term + 1
    cluster.commit("b", [b"after"])
    assert cluster.applied_payloads("c") == [b"after"]


def test_thesis_9_6_pre_vote_denied_to_stale_log() -> None:
    """§9.6: a pre-vote is granted only if the candidate's log is up to date (§5.4.1)."""
    cluster = _elected()
    term = cluster.node("a").term
    cluster.timeout("b")
    cluster.drop()
    actions = cluster.send("c", "b", RequestVote(term + 1, "c", 0, 0, pre_vote=True))
    assert [r.granted for r in sent(actions, RequestVoteReply)] == [False]


# --- thesis §4.2.3 disruptive servers ------------------------------------------------------


def test_thesis_4_2_3_request_vote_ignored_while_a_leader_is_heard() -> None:
    """§4.2.3: "if a server receives a RequestVote request within the minimum election timeout
    of hearing from a current leader, it does not update its term or grant its vote." """
    cluster = _elected(RaftOptions(pre_vote=False))
    term = cluster.node("b").term
    actions = cluster.send("c", "b", RequestVote(term + 5, "c", 100, term + 4))
    assert not sent(actions, RequestVoteReply)
    assert cluster.node("b").term == term
    assert cluster.node("b").leader == "a"
    assert cluster.node("a").role is Role.LEADER


def test_thesis_4_2_3_leader_ignores_disruptive_request_vote() -> None:
    """§4.2.3: the leader itself does not step down for a RequestVote of a higher term."""
    cluster = _elected(RaftOptions(pre_vote=False))
    term = cluster.node("a").term
    cluster.send("c", "a", RequestVote(term + 1, "c", 100, term))
    assert cluster.node("a").role is Role.LEADER
    assert cluster.node("a").term == term


def test_thesis_3_10_transfer_vote_overrides_stickiness() -> None:
    """§3.10/§4.2.3: a RequestVote sent because of a leadership transfer is honoured even
    while the leader is heard."""
    cluster = _elected(RaftOptions(pre_vote=False))
    node = cluster.node("b")
    term = node.term
    last = (node.last_index, node.last_term)
    actions = cluster.send("c", "b", RequestVote(term + 1, "c", *last, transfer=True))
    assert [r.granted for r in sent(actions, RequestVoteReply)] == [True]
    assert node.term == term + 1


# --- check-quorum ------------------------------------------------------------------------


def test_thesis_6_2_check_quorum_leader_steps_down_without_a_quorum() -> None:
    """§6.2: "a leader steps down if an election timeout elapses without a successful round
    of heartbeats to a majority of its cluster" (election_ticks heartbeat intervals)."""
    options = RaftOptions(election_ticks=3)
    cluster = _elected(options)
    leader = cluster.node("a")
    term = leader.term
    cluster.isolate("a")
    roles = []
    for _ in range(2 * options.election_ticks):
        cluster.timeout("a")
        cluster.deliver_all()
        roles.append(leader.role)
    assert Role.FOLLOWER in roles
    assert roles.index(Role.FOLLOWER) < 2 * options.election_ticks
    assert leader.term == term
    refusal = leader.propose(b"x")
    assert isinstance(refusal, Refusal)


def test_thesis_6_2_leader_with_quorum_keeps_leading() -> None:
    """Check-quorum does not depose a leader that keeps hearing from a majority."""
    options = RaftOptions(election_ticks=3)
    cluster = _elected(options)
    cluster.isolate("c")
    for _ in range(4 * options.election_ticks):
        cluster.heartbeat("a")
    assert cluster.node("a").role is Role.LEADER


def test_thesis_6_2_without_check_quorum_isolated_leader_keeps_role() -> None:
    """With check_quorum off, the isolated leader does not notice (the contrast case)."""
    options = RaftOptions(election_ticks=3, check_quorum=False)
    cluster = _elected(options)
    cluster.isolate("a")
    for _ in range(4 * options.election_ticks):
        cluster.heartbeat("a")
    assert cluster.node("a").role is Role.LEADER


# --- thesis §6.4 ReadIndex ----------------------------------------------------------------


def test_thesis_6_4_read_waits_for_the_leaders_noop_to_commit() -> None:
    """§6.4 step 1: "If the leader has not yet marked an entry from its current term
    committed, it waits until it has done so." """
    cluster = Cluster(ABC)
    cluster.timeout("a")
    cluster.deliver_all(kind=(RequestVote, RequestVoteReply))
    leader = cluster.node("a")
    assert leader.role is Role.LEADER
    assert leader.read_index(1) is None
    cluster.drain("a")
    assert not cluster.stores["a"].reads
    cluster.deliver_all()
    cluster.heartbeat("a")
    assert cluster.stores["a"].reads == [ReadReady(1, leader.last_index)]
    assert leader.commit_index == leader.last_index


def test_thesis_6_4_read_confirmed_only_after_a_heartbeat_quorum() -> None:
    """§6.4 steps 2-3: the leader records its commit index as the read index, then
    confirms it is still leader by a round of heartbeats acknowledged by a majority."""
    cluster = _elected()
    leader = cluster.node("a")
    cluster.commit("a", [b"x"])
    assert leader.read_index(7) is None
    cluster.drain("a")
    assert not cluster.stores["a"].reads
    cluster.deliver(kind=AppendEntries, to="b")
    assert not cluster.stores["a"].reads
    cluster.drop(kind=AppendEntries, to="c")
    cluster.deliver(kind=AppendEntriesReply, src="b")
    assert cluster.stores["a"].reads == [ReadReady(7, leader.commit_index)]


def test_thesis_6_4_old_acks_do_not_confirm_a_new_read() -> None:
    """§6.4: only heartbeats sent after the read arrived prove leadership for it."""
    cluster = _elected()
    cluster.heartbeat("a")
    cluster.timeout("a")
    cluster.deliver(kind=AppendEntries)
    old_acks = cluster.drop(kind=AppendEntriesReply)
    cluster.node("a").read_index(1)
    cluster.drain("a")
    cluster.drop(kind=AppendEntries)
    for env in old_acks:
        cluster.inject(env)
    assert not cluster.stores["a"].reads


def test_thesis_6_4_many_reads_share_one_heartbeat_round() -> None:
    """§6.4 batching: reads registered together are confirmed by one heartbeat round."""
    cluster = _elected()
    leader = cluster.node("a")
    for request_id in range(1, 6):
        assert leader.read_index(request_id) is None
    actions = cluster.drain("a")
    assert len(sent(actions, AppendEntries, to="b")) == 1
    assert len(sent(actions, AppendEntries, to="c")) == 1
    cluster.deliver_all()
    reads = cluster.stores["a"].reads
    assert [r.request_id for r in reads if isinstance(r, ReadReady)] == [1, 2, 3, 4, 5]


def test_thesis_6_4_follower_read_is_forwarded_to_the_leader() -> None:
    """§6.4: a follower asks the leader for a read index, then serves the read locally once
    its applied index has caught up."""
    cluster = _elected()
    cluster.commit("a", [b"x"])
    follower = cluster.node("b")
    assert follower.read_index(9) is None
    actions = cluster.drain("b")
    assert [m.request_id for m in sent(actions, ReadIndexRequest, to="a")] == [9]
    cluster.deliver_all()
    assert cluster.stores["b"].reads == [ReadReady(9, cluster.node("a").commit_index)]
    assert follower.applied_index >= cluster.node("a").commit_index


def test_thesis_6_4_read_fails_when_the_leader_steps_down() -> None:
    """A read that can no longer be confirmed fails so the caller can retry elsewhere."""
    cluster = _elected()
    leader = cluster.node("a")
    leader.read_index(3)
    cluster.drain("a")
    cluster.drop()
    cluster.send("b", "a", AppendEntriesReply(leader.term + 1, "b", False))
    assert leader.role is Role.FOLLOWER
    assert [type(r) for r in cluster.stores["a"].reads] == [ReadFailed]
    assert cluster.stores["a"].reads[0].request_id == 3


def test_thesis_6_4_forwarded_read_fails_when_the_leader_changes() -> None:
    """A follower whose leader changes fails the reads it forwarded to the old leader."""
    cluster = _elected()
    cluster.node("b").read_index(4)
    cluster.drain("b")
    cluster.drop()
    term = cluster.node("b").term
    cluster.send("c", "b", AppendEntries(term + 1, "c", 0, 0, (), 0))
    assert [(type(r), r.request_id) for r in cluster.stores["b"].reads] == [(ReadFailed, 4)]


def test_thesis_6_4_deposed_leader_serves_no_stale_read() -> None:
    """Pitfall 16: a leader cut off from the majority cannot confirm a read, even though
    a newer leader has committed writes it does not know about."""
    cluster = _elected()
    cluster.isolate("a")
    cluster.elect("b")
    cluster.commit("b", [b"newer"])
    old = cluster.node("a")
    old.read_index(1)
    cluster.drain("a")
    cluster.deliver_all()
    assert not [r for r in cluster.stores["a"].reads if isinstance(r, ReadReady)]
    cluster.heal()
    cluster.heartbeat("a")
    cluster.heartbeat("b")
    assert [type(r) for r in cluster.stores["a"].reads] == [ReadFailed]


def test_thesis_6_4_read_without_known_leader_is_refused() -> None:
    """A follower that knows no leader refuses a read at once (NO_LEADER)."""
    cluster = Cluster(ABC)
    refusal = cluster.node("b").read_index(1)
    assert isinstance(refusal, Refusal)
    assert refusal.reason is RefusalReason.NO_LEADER


def test_thesis_6_4_leader_answers_read_request_only_while_leading() -> None:
    """A ReadIndexRequest reaching a non-leader gets a negative reply, failing the read."""
    cluster = _elected()
    term = cluster.node("b").term
    actions = cluster.send("c", "b", ReadIndexRequest(term, "c", 11))
    assert [(m.request_id, m.ok) for m in sent(actions, ReadIndexReply)] == [(11, False)]


# --- thesis §3.10 leadership transfer -----------------------------------------------------


def test_thesis_3_10_timeout_now_only_once_target_is_caught_up() -> None:
    """§3.10: "the prior leader ... sends it a TimeoutNow request" only after it "has
    replicated all of its entries to the target"; the target then wins even though the
    others heard the old leader recently."""
    cluster = _elected()
    cluster.isolate("c")
    cluster.commit("a", [b"1", b"2", b"3"])
    leader = cluster.node("a")
    assert leader.transfer_leadership("c") is None
    actions = cluster.drain("a")
    assert not sent(actions, TimeoutNow)
    cluster.deliver_all()
    cluster.heal()
    term = leader.term
    cluster.heartbeat("a")
    timeout_now = [e for e in cluster.delivered if isinstance(e.message, TimeoutNow)]
    assert {e.dst for e in timeout_now} == {"c"}
    assert cluster.node("c").role is Role.LEADER
    assert cluster.node("c").term == term + 1
    assert leader.role is Role.FOLLOWER
    cluster.commit("c", [b"4"])
    assert cluster.applied_payloads("a") == [b"1", b"2", b"3", b"4"]


def test_thesis_3_10_proposals_refused_during_transfer_and_transfer_abandoned() -> None:
    """§3.10: the leader stops accepting client requests during a transfer, and aborts it
    "if the transfer does not complete within an election timeout"."""
    options = RaftOptions(election_ticks=4)
    cluster = _elected(options)
    cluster.isolate("c")
    cluster.commit("a", [b"1"])
    leader = cluster.node("a")
    assert leader.transfer_leadership("c") is None
    refusal = leader.propose(b"no")
    assert isinstance(refusal, Refusal)
    assert refusal.reason is RefusalReason.TRANSFER_IN_PROGRESS
    for _ in range(options.election_ticks):
        cluster.heartbeat("a")
    assert leader.role is Role.LEADER
    assert not isinstance(leader.propose(b"yes"), Refusal)


def test_thesis_3_10_transfer_without_target_picks_most_caught_up_voter() -> None:
    """Graceful shutdown: ``transfer_leadership()`` picks the voter with the most log."""
    cluster = _elected()
    cluster.isolate("c")
    cluster.commit("a", [b"1"])
    cluster.heal()
    assert cluster.node("a").transfer_leadership() is None
    cluster.drain("a")
    cluster.deliver_all()
    assert cluster.node("b").role is Role.LEADER


def test_thesis_3_10_transfer_refusals() -> None:
    """Only a leader transfers, and only to another voter."""
    cluster = _elected()
    on_follower = cluster.node("b").transfer_leadership("c")
    assert isinstance(on_follower, Refusal)
    assert on_follower.reason is RefusalReason.NOT_LEADER
    assert on_follower.leader == "a"
    for target in ("a", "zz"):
        refusal = cluster.node("a").transfer_leadership(target)
        assert isinstance(refusal, Refusal)
        assert refusal.reason is RefusalReason.INVALID_ARGUMENT
    single = Cluster(["solo"])
    single.elect("solo")
    alone = single.node("solo").transfer_leadership()
    assert isinstance(alone, Refusal)
    assert alone.reason is RefusalReason.INVALID_ARGUMENT


def test_thesis_6_4_negative_read_index_reply_fails_the_forwarded_read() -> None:
    """When the leader cannot confirm a forwarded read, the follower fails it (retry)."""
    cluster = _elected()
    follower = cluster.node("b")
    follower.read_index(5)
    cluster.drain("b")
    cluster.drop()
    cluster.send("a", "b", ReadIndexReply(follower.term, "a", 5, 0, False))
    assert [(type(r), r.request_id) for r in cluster.stores["b"].reads] == [(ReadFailed, 5)]
    cluster.send("a", "b", ReadIndexReply(follower.term, "a", 5, 9, True))
    assert len(cluster.stores["b"].reads) == 1


def test_thesis_6_4_new_leader_is_not_confirmed_by_echoes_of_the_old_leaders_rounds() -> None:
    """§6.4: a read is confirmed by heartbeats sent after it arrived. A follower must echo the
    new leader's round numbers, not a higher number left over from the previous leader."""
    cluster = _elected()
    for _ in range(8):
        cluster.heartbeat("a")
    cluster.isolate("a")
    cluster.elect("b")
    cluster.timeout("b")
    cluster.deliver(kind=AppendEntries, to="c")
    old_acks = cluster.drop(kind=AppendEntriesReply, src="c")
    assert old_acks
    cluster.node("b").read_index(1)
    cluster.drain("b")
    cluster.drop(src="b")
    for env in old_acks:
        cluster.inject(env)
    assert not cluster.stores["b"].reads


def test_thesis_4_2_3_leader_deposed_by_check_quorum_is_not_sticky() -> None:
    """§4.2.3 ignores votes only "within the minimum election timeout of hearing from a
    current leader". A leader that stepped down for lack of a quorum knows no current
    leader, so it must help elect one at once (as etcd does), not stall for a timeout."""
    for pre_vote in (True, False):
        options = RaftOptions(election_ticks=2, pre_vote=pre_vote)
        cluster = _elected(options)
        deposed = cluster.node("a")
        cluster.isolate("a")
        for _ in range(2 * options.election_ticks):
            cluster.timeout("a")
            if deposed.role is not Role.LEADER:
                break
        assert deposed.role is Role.FOLLOWER
        assert deposed.leader is None
        cluster.heal()
        cluster.network.clear()
        term = deposed.term
        request = RequestVote(term + 1, "b", deposed.last_index, deposed.last_term, pre_vote)
        replies = sent(cluster.send("b", "a", request), RequestVoteReply)
        assert [r.granted for r in replies] == [True], pre_vote


def test_thesis_6_4_single_node_read_needs_no_round_trip() -> None:
    """A single voter is its own quorum: a read is ready as soon as its no-op committed."""
    cluster = Cluster(["solo"])
    cluster.elect("solo")
    assert cluster.node("solo").read_index(1) is None
    cluster.drain("solo")
    assert cluster.stores["solo"].reads == [ReadReady(1, cluster.node("solo").commit_index)]
