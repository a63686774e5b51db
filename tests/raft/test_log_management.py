"""Snapshots (paper §7), restart, durability, replication limits, fast backtracking and
proposal status."""

from __future__ import annotations

import pytest

from replobj.raft import (
    AppendLog,
    ClusterConfig,
    CompactLog,
    Entry,
    InstallSnapshot,
    ProposalId,
    ProposalStatus,
    RaftOptions,
    Role,
    SnapshotMeta,
    WriteSnapshotChunk,
)
from replobj.raft import messages as msg
from replobj.raft.messages import AppendEntries, AppendEntriesReply

from .harness import Cluster, of_type, restored, sent

ABC = ["a", "b", "c"]
PAYLOADS = [b"cmd-%02d" % i for i in range(12)]


def _elected(options: RaftOptions | None = None, auto_persist: bool = True) -> Cluster:
    cluster = Cluster(ABC, options=options)
    cluster.elect("a")
    cluster.auto_persist = auto_persist
    return cluster


# --- §7 log compaction ---------------------------------------------------------------------


def test_7_snapshot_compacts_the_log_prefix() -> None:
    """§7: "the entire system state is written to a snapshot on stable storage, then the
    entire log up to that point is discarded"; the snapshot keeps last index/term/config."""
    cluster = _elected()
    cluster.commit("a", PAYLOADS[:4])
    leader = cluster.node("a")
    applied = leader.applied_index
    meta = cluster.take_snapshot("a")
    assert meta == SnapshotMeta(applied, leader.term, ClusterConfig(voters=frozenset(ABC)))
    assert CompactLog(applied) in cluster.trace("a")
    assert leader.snapshot == meta
    assert leader.term_at(applied) == leader.term
    assert leader.term_at(applied - 1) is None
    assert leader.entries_between(1, applied + 1) == []
    cluster.commit("a", PAYLOADS[4:5])
    assert cluster.applied_payloads("b") == PAYLOADS[:5]


def test_7_snapshot_meta_only_for_applied_uncompacted_indexes() -> None:
    """A snapshot can only cover applied entries, and never go backwards."""
    cluster = _elected()
    cluster.commit("a", PAYLOADS[:2])
    leader = cluster.node("a")
    with pytest.raises(ValueError, match="snapshot"):
        leader.snapshot_meta_for(leader.applied_index + 1)
    cluster.take_snapshot("a")
    with pytest.raises(ValueError, match="snapshot"):
        leader.snapshot_meta_for(leader.snapshot.last_index - 1)
    before = leader.snapshot
    leader.handle_snapshot_taken(SnapshotMeta(1, 1, before.config))
    assert not cluster.drain("a")
    assert leader.snapshot == before


def test_7_lagging_follower_gets_snapshot_in_chunks() -> None:
    """§7: the leader sends InstallSnapshot "to followers that lag behind"; chunks are
    bounded by snapshot_chunk_bytes and the follower ends with the leader's state."""
    options = RaftOptions(snapshot_chunk_bytes=40)
    cluster = _elected(options)
    cluster.isolate("c")
    cluster.commit("a", PAYLOADS)
    meta = cluster.take_snapshot("a")
    cluster.heal()
    cluster.heartbeat("a")
    cluster.heartbeat("a")
    chunks = [e.message for e in cluster.delivered if isinstance(e.message, msg.InstallSnapshot)]
    assert len(chunks) >= 3
    assert all(len(c.data) <= 40 for c in chunks)
    assert [c.offset for c in chunks] == sorted(c.offset for c in chunks)
    follower = cluster.node("c")
    assert follower.snapshot == meta
    assert cluster.applied_payloads("c") == PAYLOADS
    assert follower.commit_index == cluster.node("a").commit_index
    installs = of_type(cluster.trace("c"), InstallSnapshot)
    assert [i.meta for i in installs] == [meta]
    cluster.commit("a", [b"after"])
    assert cluster.applied_payloads("c") == [*PAYLOADS, b"after"]


def test_7_lagging_follower_gets_snapshot_then_the_entries_after_it() -> None:
    """§7: a follower behind the compacted prefix receives the snapshot, then the entries
    that follow it by ordinary AppendEntries."""
    cluster = _elected(RaftOptions(max_append_entries=2))
    cluster.isolate("c")
    cluster.commit("a", PAYLOADS)
    leader = cluster.node("a")
    meta = cluster.take_snapshot("a", leader.applied_index - 4)
    assert leader.last_index > meta.last_index
    cluster.heal()
    for _ in range(3):
        cluster.heartbeat("a")
    follower = cluster.node("c")
    assert follower.snapshot == meta
    assert follower.last_index == leader.last_index
    assert cluster.applied_payloads("c") == PAYLOADS
    appended = [e.index for a in of_type(cluster.trace("c"), AppendLog) for e in a.entries]
    assert set(range(meta.last_index + 1, leader.last_index + 1)) <= set(appended)


def test_7_snapshot_transfer_resumes_at_the_lost_chunk() -> None:
    """Resumable transfer: a lost chunk is re-sent from its offset, not from byte 0."""
    options = RaftOptions(snapshot_chunk_bytes=32)
    cluster = _elected(options)
    cluster.isolate("c")
    cluster.commit("a", PAYLOADS)
    cluster.take_snapshot("a")
    cluster.heal()
    cluster.timeout("a")
    chunks_delivered = 0
    lost = []
    for _ in range(40):
        if chunks_delivered == 2 and cluster.messages(kind=msg.InstallSnapshot):
            lost = cluster.drop(kind=msg.InstallSnapshot)
            break
        env = cluster.deliver(where=lambda e: "c" in (e.src, e.dst), limit=1)
        if not env:
            cluster.timeout("a")
        chunks_delivered += sum(isinstance(e.message, msg.InstallSnapshot) for e in env)
    assert lost
    lost_offset = lost[0].message
    assert isinstance(lost_offset, msg.InstallSnapshot)
    assert lost_offset.offset > 0
    cluster.heartbeat("a")
    cluster.heartbeat("a")
    resent = [
        e.message.offset
        for e in cluster.delivered
        if isinstance(e.message, msg.InstallSnapshot) and e.dst == "c"
    ]
    assert resent.count(0) == 1
    assert lost_offset.offset in resent
    assert cluster.applied_payloads("c") == PAYLOADS


def test_7_snapshot_older_than_commit_index_is_ignored() -> None:
    """Pitfall 22: an InstallSnapshot covering less than the follower has committed is
    acknowledged without touching the follower's state."""
    cluster = _elected()
    cluster.commit("a", PAYLOADS[:5])
    follower = cluster.node("b")
    commit = follower.commit_index
    last = follower.last_index
    old = SnapshotMeta(2, follower.term_at(2) or 0, follower.config)
    actions = cluster.send("a", "b", msg.InstallSnapshot(follower.term, "a", old, 0, b"[]", True))
    assert not of_type(actions, WriteSnapshotChunk)
    assert not of_type(actions, InstallSnapshot)
    assert follower.commit_index == commit
    assert follower.last_index == last
    assert cluster.applied_payloads("b") == PAYLOADS[:5]


def test_7_entries_after_a_matching_snapshot_are_kept() -> None:
    """§7: "If the follower receives a snapshot that describes a prefix of its log, log
    entries covered by the snapshot are deleted but entries following the snapshot are
    still valid and must be retained"; on a mismatch the whole log is discarded."""
    for snapshot_term, keeps in ((1, True), (2, False)):
        cluster = Cluster(ABC)
        entries = tuple(Entry(1, i) for i in range(1, 7))
        cluster.send("a", "b", AppendEntries(1, "a", 0, 0, entries, 0))
        follower = cluster.node("b")
        meta = SnapshotMeta(4, snapshot_term, follower.config)
        actions = cluster.send("a", "b", msg.InstallSnapshot(2, "a", meta, 0, b"[]", True))
        installs = of_type(actions, InstallSnapshot)
        assert [i.keep_log for i in installs] == [keeps]
        assert follower.snapshot == meta
        assert follower.commit_index == 4
        assert follower.last_index == (6 if keeps else 4)
        assert sorted(cluster.stores["b"].log) == ([5, 6] if keeps else [])


def test_7_chunk_out_of_order_is_refused_with_expected_offset() -> None:
    """A chunk that does not continue the staged bytes is not written; the reply names the
    offset the follower expects so the leader can resume."""
    cluster = _elected()
    follower = cluster.node("b")
    meta = SnapshotMeta(50, follower.term, follower.config)
    term = follower.term
    first = cluster.send("a", "b", msg.InstallSnapshot(term, "a", meta, 0, b"0123", False))
    assert len(of_type(first, WriteSnapshotChunk)) == 1
    gap = cluster.send("a", "b", msg.InstallSnapshot(term, "a", meta, 10, b"x", False))
    assert not of_type(gap, WriteSnapshotChunk)
    replies = sent(gap, msg.InstallSnapshotReply)
    assert [(r.next_offset, r.done) for r in replies] == [(4, False)]


# --- restart -------------------------------------------------------------------------------


def test_restart_from_restored_state_replays_committed_entries() -> None:
    """Figure 2: term, vote and log are persistent; after a full-cluster restart the same
    entries are re-applied in the same order."""
    cluster = _elected()
    cluster.commit("a", PAYLOADS[:3])
    cluster.take_snapshot("b")
    cluster.commit("a", PAYLOADS[3:5])
    terms = {n: cluster.node(n).term for n in ABC}
    for node_id in ABC:
        node = cluster.restart(node_id)
        assert node.term == terms[node_id]
        assert node.role is Role.FOLLOWER
        assert node.commit_index == node.snapshot.last_index
    cluster.network.clear()
    assert cluster.applied_payloads("b") == PAYLOADS[:3]
    cluster.elect("b")
    for node_id in ABC:
        assert cluster.applied_payloads(node_id) == PAYLOADS[:5], node_id


def test_restart_loses_unsynced_tail_and_leader_repairs_it() -> None:
    """Pitfall 5: a crash loses appends not reported durable; the follower never acked
    them, so the leader's view stays right and it re-sends them."""
    cluster = _elected(auto_persist=False)
    cluster.propose("a", b"x")
    cluster.persist("a")
    cluster.deliver(kind=AppendEntries)
    cluster.persist("c")
    cluster.deliver_all()
    leader = cluster.node("a")
    assert leader.commit_index == leader.last_index
    assert leader.status().peers["b"].match_index < leader.last_index
    cluster.restart("b")
    cluster.auto_persist = True
    assert cluster.node("b").last_index < leader.last_index
    cluster.heartbeat("a")
    cluster.heartbeat("a")
    assert cluster.applied_payloads("b") == [b"x"]


# --- durability ----------------------------------------------------------------------------


def test_leader_counts_itself_only_after_its_append_is_durable() -> None:
    """Pitfall 4 (etcd #14370): a single-node leader must not commit before persisting."""
    cluster = Cluster(["solo"])
    cluster.elect("solo")
    cluster.auto_persist = False
    leader = cluster.node("solo")
    cluster.propose("solo", b"x")
    assert leader.commit_index < leader.last_index
    assert cluster.applied_payloads("solo") == []
    cluster.persist("solo")
    assert leader.commit_index == leader.last_index
    assert cluster.applied_payloads("solo") == [b"x"]


def test_leader_commits_with_followers_while_its_own_write_is_pending() -> None:
    """Followers' writes proceed in parallel: two durable followers of three commit even
    before the leader's own append is durable; one is not enough without the leader."""
    cluster = _elected(auto_persist=False)
    leader = cluster.node("a")
    cluster.propose("a", b"x")
    cluster.deliver(kind=AppendEntries)
    cluster.persist("b")
    cluster.deliver(kind=AppendEntriesReply)
    assert leader.commit_index < leader.last_index
    cluster.persist("a")
    assert leader.commit_index == leader.last_index


def test_follower_acknowledges_only_persisted_entries() -> None:
    """Pitfall 4: an AppendEntries success reply never covers entries not yet durable."""
    cluster = _elected(auto_persist=False)
    cluster.propose("a", b"x")
    last = cluster.node("a").last_index
    cluster.deliver(kind=AppendEntries, to="b")
    early = [e.message for e in cluster.messages(kind=AppendEntriesReply, src="b")]
    assert all(isinstance(m, AppendEntriesReply) and m.match_index < last for m in early)
    assert cluster.node("b").persisted_index < last
    cluster.persist("b")
    late = [e.message for e in cluster.messages(kind=AppendEntriesReply, src="b")]
    assert any(isinstance(m, AppendEntriesReply) and m.match_index == last for m in late)


def test_persist_report_for_overwritten_entries_is_ignored() -> None:
    """A durability report whose term no longer matches the log (overwritten) is ignored."""
    cluster = _elected(auto_persist=False)
    follower = cluster.node("b")
    before = follower.persisted_index
    follower.handle_log_persisted(follower.last_index + 5, 1)
    follower.handle_log_persisted(before, follower.term + 7)
    assert follower.persisted_index == before


# --- batching and pipelining --------------------------------------------------------------


def test_append_entries_respect_entry_and_byte_limits() -> None:
    """Every AppendEntries carries at most max_append_entries entries and max_append_bytes
    bytes (a single larger entry is still sent alone)."""
    options = RaftOptions(max_append_entries=3, max_append_bytes=100)
    cluster = _elected(options)
    leader = cluster.node("a")
    assert isinstance(leader.propose_batch([b"s" * 10] * 7 + [b"L" * 300]), list)
    cluster.drain("a")
    cluster.deliver_all()
    cluster.heartbeat("a")
    batches = [
        e.message.entries
        for e in cluster.delivered
        if isinstance(e.message, AppendEntries) and e.message.entries
    ]
    assert batches
    for entries in batches:
        assert len(entries) <= 3
        assert len(entries) == 1 or sum(x.size for x in entries) <= 100
    assert cluster.applied_payloads("b") == [b"s" * 10] * 7 + [b"L" * 300]


def _appends_in_flight(cluster: Cluster, to: str) -> list[AppendEntries]:
    return [
        e.message
        for e in cluster.messages(to=to)
        if isinstance(e.message, AppendEntries) and e.message.entries
    ]


def test_inflight_appends_are_bounded() -> None:
    """Pipelining is bounded by max_inflight_appends unacknowledged messages per follower."""
    options = RaftOptions(max_append_entries=1, max_inflight_appends=2)
    cluster = _elected(options)
    for payload in PAYLOADS:
        cluster.node("a").propose(payload)
        cluster.drain("a")
    in_flight = _appends_in_flight(cluster, "b")
    assert 1 <= len(in_flight) <= 2
    cluster.deliver_all()
    cluster.heartbeat("a")
    assert cluster.applied_payloads("b") == PAYLOADS


def test_inflight_bytes_are_bounded() -> None:
    """Pipelining is also bounded by max_inflight_bytes per follower."""
    options = RaftOptions(max_append_entries=1, max_inflight_bytes=100)
    cluster = _elected(options)
    for payload in [b"z" * 60] * 6:
        cluster.node("a").propose(payload)
        cluster.drain("a")
    in_flight = _appends_in_flight(cluster, "b")
    assert 1 <= len(in_flight) <= 2
    cluster.deliver_all()
    cluster.heartbeat("a")
    assert cluster.applied_payloads("c") == [b"z" * 60] * 6


def test_heartbeat_is_sent_even_when_the_pipeline_is_full() -> None:
    """Pitfall 8: heartbeats must not queue behind bulk replication. With the in-flight
    window full (its messages lost), a heartbeat still reaches every follower and the
    lost entries are recovered."""
    options = RaftOptions(max_append_entries=1, max_inflight_appends=1)
    cluster = _elected(options)
    for payload in PAYLOADS[:3]:
        cluster.node("a").propose(payload)
    cluster.drain("a")
    assert len(_appends_in_flight(cluster, "b")) == 1
    cluster.drop()
    actions = cluster.timeout("a")
    assert len(sent(actions, AppendEntries, to="b")) == 1
    assert len(sent(actions, AppendEntries, to="c")) == 1
    cluster.deliver_all()
    cluster.heartbeat("a")
    assert cluster.applied_payloads("b") == PAYLOADS[:3]


def test_batched_proposals_share_one_append_and_one_message() -> None:
    """Proposals queued before take_actions leave as one AppendLog and one message each
    (core contract: take_actions is the flush point where queued proposals become "one
    AppendLog + one AppendEntries per follower"), so the driver does one durable write."""
    cluster = _elected()
    leader = cluster.node("a")
    for payload in PAYLOADS[:4]:
        leader.propose(payload)
    actions = cluster.drain("a")
    appends = of_type(actions, AppendLog)
    assert [len(a.entries) for a in appends] == [4]
    assert len(sent(actions, AppendEntries, to="b")) == 1


# --- fast backtracking -----------------------------------------------------------------------


def test_5_3_fast_backtracking_takes_rounds_per_term_not_per_entry() -> None:
    """§5.3 optimisation: the follower's rejection names the conflicting term, so a follower
    far behind is repaired in about one round trip per term, not one per entry."""
    leader_log = [1] * 5 + [3] * 60
    follower_log = [1] * 5 + [2] * 80
    cluster = Cluster.from_states(
        {
            "a": restored(ABC, *leader_log),
            "b": restored(ABC, *follower_log),
            "c": restored(ABC, 1),
        },
        options=RaftOptions(pre_vote=False),
    )
    cluster.elect("a")
    rejections = [
        e
        for e in cluster.delivered
        if isinstance(e.message, AppendEntriesReply) and not e.message.success
    ]
    assert len([e for e in rejections if e.src == "b"]) <= 3
    assert len([e for e in rejections if e.src == "c"]) <= 2
    leader = cluster.node("a")
    for node_id in ("b", "c"):
        node = cluster.node(node_id)
        assert node.last_index == leader.last_index
        assert node.term_at(65) == 3
        assert node.term_at(6) == 3


# --- proposal status ---------------------------------------------------------------------------


def test_proposal_status_pending_then_committed() -> None:
    """A proposal is PENDING until its index commits with its term, then COMMITTED."""
    cluster = _elected()
    leader = cluster.node("a")
    proposal = cluster.propose("a", b"x")
    assert leader.proposal_status(proposal) is ProposalStatus.PENDING
    cluster.deliver_all()
    assert leader.proposal_status(proposal) is ProposalStatus.COMMITTED
    cluster.heartbeat("a")
    assert cluster.node("b").proposal_status(proposal) is ProposalStatus.COMMITTED


def test_proposal_status_rejected_when_overwritten_and_unknown_when_compacted() -> None:
    """A proposal whose index committed with another entry is REJECTED (callers never wait
    forever); once compacted into a snapshot the outcome is UNKNOWN."""
    cluster = _elected()
    cluster.isolate("a")
    lost = cluster.propose("a", b"lost")
    cluster.elect("b")
    cluster.commit("b", [b"won"])
    cluster.heal()
    cluster.heartbeat("b")
    old = cluster.node("a")
    assert old.role is Role.FOLLOWER
    assert old.proposal_status(lost) is ProposalStatus.REJECTED
    assert cluster.applied_payloads("a") == [b"won"]
    cluster.commit("b", PAYLOADS[:2])
    cluster.take_snapshot("a")
    assert old.proposal_status(ProposalId(lost.term, 1)) is ProposalStatus.UNKNOWN
    assert old.proposal_status(ProposalId(99, old.last_index + 10)) is ProposalStatus.PENDING


def test_7_snapshot_meta_carries_the_config_in_effect_at_its_index() -> None:
    """§7: the snapshot includes "the latest configuration as of the last included index",
    not a configuration appended after it."""
    cluster = Cluster(ABC, joining=["d"])
    cluster.elect("a")
    before_change = cluster.node("a").applied_index
    cluster.commit("a", [b"x"])
    assert isinstance(cluster.node("a").add_member("d", promote=False), ProposalId)
    cluster.drain("a")
    cluster.deliver_all()
    cluster.heartbeat("a")
    leader = cluster.node("a")
    assert leader.snapshot_meta_for(before_change).config == ClusterConfig(voters=frozenset(ABC))
    grown = ClusterConfig(voters=frozenset(ABC), learners=frozenset("d"))
    assert leader.snapshot_meta_for(leader.applied_index).config == grown
    meta = cluster.take_snapshot("a")
    assert meta.config == grown
    assert leader.config == grown


def test_7_messages_are_ignored_while_a_snapshot_is_being_installed() -> None:
    """Between the InstallSnapshot action and handle_snapshot_installed the log is about to
    be replaced, so AppendEntries and further chunks must not touch it."""
    cluster = Cluster(ABC)
    node = cluster.node("b")
    meta = SnapshotMeta(5, 1, node.config)
    node.handle_message(msg.InstallSnapshot(1, "a", meta, 0, b"[]", True))
    node.handle_message(AppendEntries(1, "a", 0, 0, (Entry(1, 1),), 0))
    node.handle_message(msg.InstallSnapshot(1, "a", meta, 0, b"[]", True))
    actions = cluster.drain("b")
    assert not of_type(actions, AppendLog)
    assert len(of_type(actions, InstallSnapshot)) == 1
    assert node.snapshot == meta
    assert node.last_index == 5


def test_7_member_added_after_compaction_gets_the_snapshot_then_is_promoted() -> None:
    """A node added once the log prefix is compacted is brought up by InstallSnapshot (its
    configuration comes from the snapshot), then promoted once caught up."""
    cluster = Cluster(ABC, joining=["d"], options=RaftOptions(snapshot_chunk_bytes=64))
    cluster.elect("a")
    cluster.commit("a", PAYLOADS)
    cluster.take_snapshot("a")
    assert isinstance(cluster.node("a").add_member("d"), ProposalId)
    cluster.drain("a")
    cluster.deliver_all()
    for _ in range(4):
        cluster.heartbeat("a")
    newcomer = cluster.node("d")
    assert of_type(cluster.trace("d"), InstallSnapshot)
    assert cluster.applied_payloads("d") == PAYLOADS
    assert newcomer.config == ClusterConfig(voters=frozenset("abcd"))
    assert cluster.node("a").config == newcomer.config


def test_7_new_snapshot_mid_transfer_restarts_the_transfer() -> None:
    """If the leader replaces its snapshot while streaming the old one, the follower's
    staging restarts at offset 0 with the new snapshot and the install completes."""
    options = RaftOptions(snapshot_chunk_bytes=24)
    cluster = _elected(options)
    cluster.isolate("c")
    cluster.commit("a", PAYLOADS[:6])
    first = cluster.take_snapshot("a")
    cluster.heal()
    for _ in range(30):
        if [e for e in cluster.delivered if isinstance(e.message, msg.InstallSnapshot)]:
            break
        if not cluster.deliver(where=lambda e: "c" in (e.src, e.dst), limit=1):
            cluster.timeout("a")
    staged = of_type(cluster.trace("c"), WriteSnapshotChunk)
    assert [w.meta for w in staged] == [first]
    cluster.isolate("c")
    cluster.commit("a", PAYLOADS[6:])
    second = cluster.take_snapshot("a")
    assert second.last_index > first.last_index
    cluster.heal()
    for _ in range(4):
        cluster.heartbeat("a")
    assert cluster.node("c").snapshot == second
    assert [i.meta for i in of_type(cluster.trace("c"), InstallSnapshot)] == [second]
    assert cluster.applied_payloads("c") == PAYLOADS


def test_5_3_followers_learn_a_new_commit_index_without_waiting_for_a_heartbeat() -> None:
    """§5.3: the leader "keeps track of the highest index it knows to be committed, and it
    includes that index in future AppendEntries RPCs" — it must not wait a heartbeat to
    send it, or every call answered by a follower waits a heartbeat interval."""
    cluster = Cluster(["a", "b", "c"])
    cluster.elect("a")
    cluster.deliver_all()
    proposal = cluster.propose("a", b"x")
    cluster.deliver(kind=msg.AppendEntries)  # entries reach b and c
    cluster.deliver(kind=msg.AppendEntriesReply)  # the leader commits
    assert cluster.node("a").commit_index >= proposal.index
    pushed = cluster.messages(kind=msg.AppendEntries, src="a")
    assert {e.dst for e in pushed} == {"b", "c"}
    assert all(e.message.leader_commit >= proposal.index for e in pushed)
    cluster.deliver(kind=msg.AppendEntries)
    assert cluster.node("b").commit_index >= proposal.index
    assert cluster.node("c").commit_index >= proposal.index
