"""Membership changes (thesis chapter 4): joint consensus, learners, removal of the leader."""

from __future__ import annotations

from replobj.raft import (
    AppendLog,
    ClusterConfig,
    Entry,
    EntryKind,
    HardState,
    ProposalId,
    RaftOptions,
    Refusal,
    RefusalReason,
    RestoredState,
    Role,
    SnapshotMeta,
)
from replobj.raft.messages import AppendEntries, RequestVote, RequestVoteReply

from .harness import Cluster, Envelope, of_type, sent

ABC = ["a", "b", "c"]


def _configs(cluster: Cluster, node_id: str) -> list[ClusterConfig]:
    """The configurations ``node_id`` appended, after the first leader's restatement of
    the bootstrap configuration (its first entry in a freshly bootstrapped cluster)."""
    configs = [
        ClusterConfig.decode(e.payload)
        for a in of_type(cluster.trace(node_id), AppendLog)
        for e in a.entries
        if e.kind is EntryKind.CONFIG
    ]
    assert configs, "the first leader restates the bootstrap configuration"
    return configs[1:]


def _joint_cluster(options: RaftOptions | None = None) -> Cluster:
    """Five nodes restarted inside C_old,new = {a,b,c} -> {a,b,c,d,e} (not yet committed)."""
    joint = ClusterConfig(voters=frozenset("abcde"), old_voters=frozenset("abc"))
    states = {
        n: RestoredState(
            HardState(1, None),
            SnapshotMeta(config=ClusterConfig(voters=frozenset("abc"))),
            (Entry(1, 1, EntryKind.CONFIG, joint.encode()),),
        )
        for n in "abcde"
    }
    return Cluster.from_states(states, options=options)


def test_thesis_4_3_joint_election_needs_both_majorities() -> None:
    """§4.3: in C_old,new "agreement (for elections and entry commitment) requires separate
    majorities from both the old and new configurations"."""
    cluster = _joint_cluster(RaftOptions(pre_vote=False))
    cluster.timeout("a")
    cluster.drop(to="b")
    cluster.drop(to="c")
    cluster.deliver_all(kind=(RequestVote, RequestVoteReply))
    assert cluster.node("a").role is Role.CANDIDATE, "d and e alone are no old majority"
    cluster.send("b", "a", RequestVoteReply(cluster.node("a").term, "b", True))
    assert cluster.node("a").role is Role.LEADER


def test_thesis_4_3_joint_commit_needs_both_majorities() -> None:
    """§4.3: an entry commits in C_old,new only when both majorities hold it."""
    cases = (("cde", False, "a,b: old majority only"), ("bc", False, "a,d,e: new majority only"))
    for cut, commits, why in (*cases, ("ce", True, "a,b,d: majorities of both")):
        cluster = _joint_cluster(RaftOptions(pre_vote=False))
        cluster.timeout("a")
        cluster.deliver_all(kind=(RequestVote, RequestVoteReply))
        leader = cluster.node("a")
        assert leader.role is Role.LEADER
        noop = leader.last_index
        for node_id in cut:
            cluster.isolate(node_id)
        cluster.deliver_all()
        cluster.heartbeat("a")
        assert (leader.commit_index >= noop) is commits, why
    cluster.heal()
    cluster.heartbeat("a")
    cluster.heartbeat("a")
    assert leader.config == ClusterConfig(voters=frozenset("abcde"))


def test_thesis_4_3_add_member_goes_learner_joint_then_new() -> None:
    """§4.2.1/§4.3: a new server joins as a non-voting learner; once caught up the leader
    promotes it through C_old,new to C_new automatically."""
    cluster = Cluster(ABC, joining=["d"])
    cluster.elect("a")
    cluster.commit("a", [b"1", b"2"])
    proposal = cluster.node("a").add_member("d")
    assert isinstance(proposal, ProposalId)
    assert "d" in cluster.node("a").config.learners
    cluster.drain("a")
    cluster.deliver_all()
    for _ in range(3):
        cluster.heartbeat("a")
    steps = _configs(cluster, "a")
    assert [c.is_joint for c in steps] == [False, True, False]
    assert steps[0].learners == {"d"}
    assert steps[1].voters == {"a", "b", "c", "d"}
    assert steps[1].old_voters == frozenset("abc")
    final = ClusterConfig(voters=frozenset("abcd"))
    for node_id in "abcd":
        assert cluster.node(node_id).config == final, node_id
    assert cluster.applied_payloads("d") == [b"1", b"2"]


def test_thesis_4_2_1_learner_is_promoted_only_when_caught_up() -> None:
    """§4.2.1: a new server is promoted only once its log has caught up (promotion_lag)."""
    cluster = Cluster(ABC, joining=["d"], options=RaftOptions(promotion_lag=0))
    cluster.elect("a")
    cluster.isolate("d")
    assert isinstance(cluster.node("a").add_member("d"), ProposalId)
    cluster.drain("a")
    cluster.deliver_all()
    cluster.commit("a", [b"1"])
    assert cluster.node("a").config.learners == {"d"}
    cluster.heal()
    for _ in range(3):
        cluster.heartbeat("a")
    assert cluster.node("a").config.voters == {"a", "b", "c", "d"}


def test_thesis_4_2_1_learners_count_for_nothing() -> None:
    """Learners receive the log but their acknowledgements and votes never count."""
    cluster = Cluster(ABC, joining=["d"], options=RaftOptions(pre_vote=False))
    cluster.elect("a")
    assert isinstance(cluster.node("a").add_member("d", promote=False), ProposalId)
    cluster.drain("a")
    cluster.deliver_all()
    cluster.heartbeat("a")
    leader = cluster.node("a")
    assert leader.config.learners == {"d"}
    cluster.isolate("b")
    cluster.isolate("c")
    cluster.propose("a", b"x")
    cluster.deliver_all()
    cluster.heartbeat("a")
    assert cluster.node("d").last_index == leader.last_index
    assert leader.commit_index < leader.last_index
    learner = cluster.node("d")
    actions = cluster.timeout("d")
    assert learner.role is Role.FOLLOWER
    assert not sent(actions, RequestVote)


def test_thesis_4_2_1_learner_vote_does_not_elect() -> None:
    """A candidate does not count a learner's granted vote toward a majority."""
    config = ClusterConfig(voters=frozenset("abc"), learners=frozenset("d"))
    state = RestoredState(snapshot=SnapshotMeta(config=config))
    cluster = Cluster.from_states(dict.fromkeys("abcd", state), options=RaftOptions(pre_vote=False))
    cluster.timeout("a")
    term = cluster.node("a").term
    cluster.drop()
    cluster.send("d", "a", RequestVoteReply(term, "d", True))
    assert cluster.node("a").role is Role.CANDIDATE


def test_thesis_4_1_config_takes_effect_when_appended_and_reverts_on_truncation() -> None:
    """§4.1: "a server always uses the latest configuration in its log, regardless of whether
    the entry is committed"; if the entry is removed by a conflict it falls back."""
    cluster = Cluster(ABC)
    follower = cluster.node("b")
    original = follower.config
    grown = ClusterConfig(voters=frozenset("abc"), learners=frozenset("d"))
    entry = Entry(1, 1, EntryKind.CONFIG, grown.encode())
    cluster.send("a", "b", AppendEntries(1, "a", 0, 0, (entry,), 0))
    assert follower.config == grown
    assert follower.commit_index == 0
    cluster.send("c", "b", AppendEntries(2, "c", 0, 0, (Entry(2, 1, EntryKind.NOOP),), 0))
    assert follower.config == original
    assert follower.term_at(1) == 2


def test_thesis_4_2_2_removed_leader_steps_down_after_c_new_commits_and_hands_over() -> None:
    """§4.2.2: a leader removed from the configuration "manages the cluster" until C_new is
    committed, then steps down; here it also hands leadership to a caught-up voter."""
    cluster = Cluster(ABC)
    cluster.elect("a")
    cluster.commit("a", [b"1"])
    leader = cluster.node("a")
    assert isinstance(leader.remove_member("a"), ProposalId)
    assert leader.config.is_joint
    cluster.drain("a")
    roles_until_new_committed = []
    for _ in range(10):
        cluster.deliver(limit=1)
        config = leader.config
        if not config.is_joint and "a" not in config.voters and leader.role is Role.LEADER:
            roles_until_new_committed.append(leader.commit_index)
        if not cluster.network:
            break
    cluster.deliver_all()
    assert leader.role is Role.FOLLOWER
    assert roles_until_new_committed, "the leader kept leading while C_new was uncommitted"
    new_leader = cluster.leader()
    assert new_leader in ("b", "c")
    assert cluster.node(new_leader).config == ClusterConfig(voters=frozenset("bc"))
    cluster.commit(new_leader, [b"2"])
    other = "c" if new_leader == "b" else "b"
    assert cluster.applied_payloads(other) == [b"1", b"2"]


def test_thesis_4_2_3_removed_server_does_not_disrupt_the_cluster() -> None:
    """§4.2.3: a removed server stops receiving heartbeats and times out, but its elections
    must not depose the leader of the remaining configuration."""
    for pre_vote in (True, False):
        cluster = Cluster(ABC, options=RaftOptions(pre_vote=pre_vote))
        cluster.elect("a")
        assert isinstance(cluster.node("a").remove_member("c"), ProposalId)
        cluster.drain("a")
        cluster.deliver_all()
        cluster.heartbeat("a")
        cluster.heartbeat("a")
        assert cluster.node("a").config == ClusterConfig(voters=frozenset("ab"))
        term = cluster.node("a").term
        for _ in range(3):
            cluster.timeout("c")
            cluster.deliver_all()
            cluster.heartbeat("a")
        assert cluster.node("a").role is Role.LEADER, pre_vote
        assert cluster.node("a").term == term, pre_vote
        assert cluster.node("b").term == term, pre_vote
        cluster.commit("a", [b"still"])
        assert cluster.applied_payloads("b") == [b"still"]


def test_thesis_4_3_removing_a_learner_is_a_single_step() -> None:
    """A learner never voted, so it is removed without joint consensus."""
    cluster = Cluster(ABC, joining=["d"])
    cluster.elect("a")
    assert isinstance(cluster.node("a").add_member("d", promote=False), ProposalId)
    cluster.drain("a")
    cluster.deliver_all()
    cluster.heartbeat("a")
    assert isinstance(cluster.node("a").remove_member("d"), ProposalId)
    cluster.drain("a")
    cluster.deliver_all()
    cluster.heartbeat("a")
    assert cluster.node("a").config == ClusterConfig(voters=frozenset("abc"))
    assert [c.is_joint for c in _configs(cluster, "a")] == [False, False]


def test_thesis_4_3_change_refused_before_the_leaders_noop_commits() -> None:
    """Pitfall 9 (raft-dev 2015): a new leader must commit an entry of its term before a
    membership change, else it may overwrite a change it does not know committed."""
    cluster = Cluster(ABC, joining=["d"])
    cluster.timeout("a")
    cluster.deliver_all(kind=(RequestVote, RequestVoteReply))
    leader = cluster.node("a")
    assert leader.role is Role.LEADER
    refusal = leader.add_member("d")
    assert isinstance(refusal, Refusal)
    assert refusal.reason is RefusalReason.LEADER_NOT_READY
    cluster.deliver_all()
    assert isinstance(leader.add_member("d"), ProposalId)


def test_thesis_4_3_one_change_at_a_time() -> None:
    """Pitfall 14: while a configuration entry is uncommitted (or joint) another change is
    refused with CONFIG_CHANGE_IN_PROGRESS, and nothing is appended."""
    cluster = Cluster(ABC, joining=["d", "e"])
    cluster.elect("a")
    leader = cluster.node("a")
    assert isinstance(leader.remove_member("c"), ProposalId)
    last = leader.last_index
    for attempt in (leader.add_member("e"), leader.remove_member("b")):
        assert isinstance(attempt, Refusal)
        assert attempt.reason is RefusalReason.CONFIG_CHANGE_IN_PROGRESS
    assert leader.last_index == last


def test_thesis_4_3_new_leader_finishes_an_interrupted_joint_change() -> None:
    """§4.3: a leader elected while C_old,new is in the log completes the change (appends
    C_new) so the cluster never stays joint; its election needed both majorities."""
    cluster = Cluster(["a", "b", "c", "d"])
    cluster.elect("a")
    assert isinstance(cluster.node("a").remove_member("d"), ProposalId)
    cluster.drain("a")
    cluster.deliver_all(kind=AppendEntries)
    cluster.crash("a")
    cluster.network.clear()
    assert cluster.node("b").config.is_joint
    cluster.elect("b")
    cluster.heartbeat("b")
    final = ClusterConfig(voters=frozenset("abc"))
    assert cluster.node("b").config == final
    assert cluster.node("c").config == final


def test_thesis_4_2_2_leader_of_two_removes_itself() -> None:
    """Removing the leader of a two-node cluster leaves the other node leading alone."""
    cluster = Cluster(["a", "b"])
    cluster.elect("a")
    assert isinstance(cluster.node("a").remove_member("a"), ProposalId)
    cluster.drain("a")
    cluster.deliver_all()
    cluster.heartbeat("b")
    assert cluster.node("b").role is Role.LEADER
    assert cluster.node("b").config == ClusterConfig(voters=frozenset("b"))
    assert cluster.node("a").role is Role.FOLLOWER
    cluster.commit("b", [b"alone"])
    assert cluster.applied_payloads("b") == [b"alone"]


def test_thesis_4_1_restarted_node_uses_the_latest_config_in_its_log() -> None:
    """§4.1: the configuration in effect is the latest in the log, committed or not, also
    after a restart from durable state."""
    grown = ClusterConfig(voters=frozenset("abc"), learners=frozenset("d"))
    state = RestoredState(
        HardState(1, None),
        SnapshotMeta(config=ClusterConfig(voters=frozenset("abc"))),
        (Entry(1, 1, EntryKind.NOOP), Entry(1, 2, EntryKind.CONFIG, grown.encode())),
    )
    cluster = Cluster.from_states(dict.fromkeys("abc", state))
    assert cluster.node("a").config == grown
    assert cluster.node("a").commit_index == 0
    cluster.elect("a")
    assert cluster.node("a").status().peers.keys() == {"b", "c", "d"}


def test_thesis_4_3_joint_config_restored_from_a_snapshot_is_finished_by_a_new_leader() -> None:
    """A snapshot taken inside C_old,new carries the joint configuration (§7: the snapshot
    holds the latest configuration); a follower that only got it through InstallSnapshot
    and then becomes leader still completes the change to C_new."""
    cluster = Cluster(["a", "b", "c", "d"], options=RaftOptions(snapshot_chunk_bytes=32))
    cluster.elect("a")
    cluster.commit("a", [b"1", b"2"])
    cluster.isolate("c")

    def carries_new_config(env: Envelope) -> bool:
        message = env.message
        return isinstance(message, AppendEntries) and any(
            e.kind is EntryKind.CONFIG and not ClusterConfig.decode(e.payload).is_joint
            for e in message.entries
        )

    leader = cluster.node("a")
    assert isinstance(leader.remove_member("d"), ProposalId)
    cluster.drain("a")
    joint_index = leader.last_index
    for _ in range(6):
        cluster.drop(where=carries_new_config)
        cluster.deliver_all(where=lambda e: not carries_new_config(e))
        cluster.timeout("a")
    assert leader.commit_index >= joint_index
    meta = cluster.take_snapshot("a", joint_index)
    assert meta.config.is_joint
    cluster.heal()
    for _ in range(4):
        cluster.drop(where=carries_new_config)
        cluster.deliver_all(where=lambda e: not carries_new_config(e))
        cluster.timeout("a")
    assert cluster.node("c").snapshot == meta
    assert cluster.node("c").config == meta.config
    cluster.crash("a")
    cluster.network.clear()
    cluster.elect("c")
    cluster.heartbeat("c")
    final = ClusterConfig(voters=frozenset("abc"))
    assert cluster.node("c").config == final
    assert cluster.node("b").config == final
    assert cluster.applied_payloads("c") == [b"1", b"2"]


def test_non_voting_member_stays_a_learner_until_marked_for_promotion() -> None:
    """A learner added without promotion keeps replicating as a non-voter; adding it again
    with promotion marks it, and it becomes a voter through joint consensus."""
    cluster = Cluster(ABC, joining=["d"])
    cluster.elect("a")
    leader = cluster.node("a")
    assert isinstance(leader.add_member("d", promote=False), ProposalId)
    cluster.commit("a", [b"x", b"y"])
    for _ in range(3):
        cluster.heartbeat("a")
    assert leader.config.learners == {"d"}
    assert "d" not in leader.config.voters
    assert cluster.node("d").last_index == leader.last_index
    refusal = leader.add_member("d", promote=False)
    assert isinstance(refusal, Refusal)
    assert "already a member" in refusal.message
    assert isinstance(leader.add_member("d"), ProposalId)
    for _ in range(4):
        cluster.heartbeat("a")
    assert leader.config.voters == {"a", "b", "c", "d"}
    assert not leader.config.learners
    assert not leader.config.is_joint
    assert leader.config_committed
    refusal = leader.add_member("d")
    assert isinstance(refusal, Refusal)
    assert "already a member" in refusal.message
