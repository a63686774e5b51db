"""Replies that tell the leader nothing new are left out (issue 11: a sequential call cost
ten messages in a 3-node cluster, now four).

A follower answers entries once they are durable (the reply it would send at once would
repeat its old match index), skips a commit-index push whose reply would repeat its last
one, and still answers every rejection, every duplicate of entries and every new
heartbeat round. A leader asked to defer its commit push sends it on a later drain, or
not at all when a new entry carries the commit index first.
"""

from __future__ import annotations

from replobj.raft import Entry, RaftNode, Send
from replobj.raft.messages import AppendEntries, AppendEntriesReply, RequestVote

from .harness import Cluster
from .test_paper import ABC, PAPER


def _replies(actions: list[object]) -> list[AppendEntriesReply]:
    return [
        a.message
        for a in actions
        if isinstance(a, Send) and isinstance(a.message, AppendEntriesReply)
    ]


def _follower() -> tuple[Cluster, RaftNode]:
    cluster = Cluster(ABC, options=PAPER, auto_persist=False)
    cluster.send("a", "b", RequestVote(1, "a", 0, 0))
    return cluster, cluster.node("b")


def test_entries_are_answered_once_durable_not_also_before() -> None:
    cluster, follower = _follower()
    actions = cluster.send("a", "b", AppendEntries(1, "a", 0, 0, (Entry(1, 1),), 0, seq=3))
    assert follower.last_index == 1
    assert _replies(actions) == [], "no reply repeating the old match index"
    cluster.persist("b", drain=False)
    replies = _replies(cluster.drain("b"))
    assert [(r.success, r.match_index, r.seq) for r in replies] == [(True, 1, 3)]


def test_a_heartbeat_while_entries_wait_for_the_disk_is_echoed_once_they_are_durable() -> None:
    cluster, _ = _follower()
    cluster.send("a", "b", AppendEntries(1, "a", 0, 0, (Entry(1, 1),), 0, seq=3))
    heartbeat = cluster.send("a", "b", AppendEntries(1, "a", 1, 1, (), 0, seq=4))
    assert _replies(heartbeat) == []
    cluster.persist("b", drain=False)
    replies = _replies(cluster.drain("b"))
    assert [(r.match_index, r.seq) for r in replies] == [(1, 4)], "the newest seq is echoed"


def test_a_commit_push_repeating_the_last_reply_gets_none() -> None:
    cluster, follower = _follower()
    cluster.send("a", "b", AppendEntries(1, "a", 0, 0, (Entry(1, 1),), 0, seq=3))
    cluster.persist("b")
    push = cluster.send("a", "b", AppendEntries(1, "a", 1, 1, (), 1, seq=3))
    assert follower.commit_index == 1, "the push still moves the commit index"
    assert _replies(push) == []


def test_what_the_leader_must_hear_is_still_answered() -> None:
    cluster, _ = _follower()
    cluster.send("a", "b", AppendEntries(1, "a", 0, 0, (Entry(1, 1),), 0, seq=3))
    cluster.persist("b")
    heartbeat = _replies(cluster.send("a", "b", AppendEntries(1, "a", 1, 1, (), 1, seq=4)))
    assert [(r.success, r.seq) for r in heartbeat] == [(True, 4)], "a new round is echoed"
    duplicate = _replies(cluster.send("a", "b", AppendEntries(1, "a", 0, 0, (Entry(1, 1),), 1, 4)))
    assert [(r.success, r.match_index) for r in duplicate] == [(True, 1)], (
        "entries are acknowledged again: the first reply may have been lost"
    )
    gap = _replies(cluster.send("a", "b", AppendEntries(1, "a", 5, 1, (), 1, seq=4)))
    assert [r.success for r in gap] == [False], "a rejection always goes out"
    newer = _replies(cluster.send("a", "b", AppendEntries(2, "a", 1, 1, (), 1, seq=4)))
    assert [(r.term, r.success) for r in newer] == [(2, True)], "a new term is answered"


def _leader_that_just_committed() -> tuple[RaftNode, int]:
    """A leader whose entry both followers acknowledged; its commit push not yet taken."""
    cluster = Cluster(ABC, options=PAPER)
    cluster.elect("a")
    cluster.deliver_all()
    leader = cluster.node("a")
    cluster.propose("a", b"x")
    for follower in ("b", "c"):
        cluster.deliver(kind=AppendEntries, to=follower)
    for follower in ("b", "c"):
        leader.handle_message(
            next(e.message for e in cluster.drop(kind=AppendEntriesReply, src=follower))
        )
    return leader, leader.last_index


def test_a_leader_defers_its_commit_push_when_asked_and_sends_it_later() -> None:
    leader, index = _leader_that_just_committed()
    assert leader.commit_index == index
    deferred = [a for a in leader.take_actions(defer_commit_push=True) if isinstance(a, Send)]
    assert deferred == [], "no empty AppendEntries while deferred"
    assert leader.commit_push_due
    pushes = [a.message for a in leader.take_actions() if isinstance(a, Send)]
    assert sorted((m.leader_commit, m.entries) for m in pushes) == [(index, ()), (index, ())]
    assert not leader.commit_push_due


def test_a_new_entry_carries_a_deferred_commit_index() -> None:
    leader, index = _leader_that_just_committed()
    leader.take_actions(defer_commit_push=True)
    leader.propose(b"y")
    sends = [a.message for a in leader.take_actions(defer_commit_push=True) if isinstance(a, Send)]
    assert sorted((m.leader_commit, len(m.entries)) for m in sends) == [(index, 1), (index, 1)]
    assert not leader.commit_push_due, "the entry told the followers"
