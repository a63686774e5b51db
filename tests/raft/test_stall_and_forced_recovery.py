"""A cluster stalled by members that rejoined empty says why, and can be forced to recover.

The scenario of the issue: a was wiped and rejoined (``RestoredState.joining()``), heard
from the leader b (so it withholds its vote until it holds b's commit index), then b was
wiped too and came back empty. c alone holds the log; a and b withhold their votes, so no
election can succeed, ever. c must say so (``status().stalled`` and one
``ElectionStalled`` action per change), and ``force_new_cluster`` on c must bring the
cluster back with everything c holds.
"""

from __future__ import annotations

from replobj.raft import (
    ElectionStall,
    ElectionStalled,
    ProposalId,
    RaftOptions,
    Refusal,
    RefusalReason,
    RestoredState,
    Role,
)
from replobj.raft.messages import AppendEntries, RequestVoteReply

from .harness import Cluster, of_type

ABC = ["a", "b", "c"]
PAYLOADS = [b"p%d" % i for i in range(5)]


def _stalled(options: RaftOptions | None = None) -> Cluster:
    """a and b wiped and back to join, a having heard from b before b was wiped."""
    cluster = Cluster(ABC, options=options)
    cluster.elect("b")
    cluster.commit("b", PAYLOADS)
    cluster.restore("a", RestoredState.joining())
    cluster.timeout("b")  # a heartbeat: a learns b's commit index from it
    cluster.deliver(kind=AppendEntries, to="a")
    assert cluster.stores["a"].hard_state.catch_up_to > 0
    cluster.network.clear()
    cluster.restore("b", RestoredState.joining())  # b wiped 14 ms later
    cluster.timeout("a")  # a's election timer: it withholds, and no longer trusts b
    return cluster


def _campaign(cluster: Cluster, node_id: str, rounds: int = 3) -> None:
    for _ in range(rounds):
        cluster.timeout(node_id)
        cluster.deliver_all()


def test_withholding_voters_say_so_in_their_replies() -> None:
    cluster = _stalled()
    cluster.timeout("c")
    cluster.deliver_all(kind=AppendEntries)
    cluster.deliver(to="a")
    cluster.deliver(to="b")
    replies = [e.message for e in cluster.messages(kind=RequestVoteReply, to="c")]
    assert {(r.sender, r.granted, r.withheld, r.last_index) for r in replies} == {
        ("a", False, True, 0),
        ("b", False, True, 0),
    }


def test_a_candidate_that_cannot_win_records_who_withholds_and_why() -> None:
    cluster = _stalled()
    c_last = cluster.node("c").last_index
    _campaign(cluster, "c")
    c = cluster.node("c")
    assert cluster.leader() is None
    assert c.role is Role.PRE_CANDIDATE
    stall = c.status().stalled
    assert stall == ElectionStall(c.term + 1, {"a": 0, "b": 0}, {"c": c_last}), stall
    assert stall.most_up_to_date == "c"
    text = stall.describe()
    for needed in ("a (last index 0)", "b (last index 0)", "c (last index", "force_new_cluster"):
        assert needed in text, text
    reports = of_type(cluster.trace("c"), ElectionStalled)
    assert [r.stall for r in reports] == [stall], "the stall is reported once, not per round"


def test_a_stall_clears_once_a_leader_is_heard() -> None:
    cluster = _stalled()
    _campaign(cluster, "c")
    assert cluster.node("c").status().stalled is not None
    kept = cluster.stores["c"]  # b's data comes back (as a copy of c's): a leader can win
    cluster.restore("b", RestoredState(kept.hard_state, kept.snapshot, kept.durable_entries()))
    cluster.elect("b")
    assert cluster.node("c").status().stalled is None
    assert [r.stall is None for r in of_type(cluster.trace("c"), ElectionStalled)] == [False, True]


def test_without_pre_vote_the_candidate_records_the_stall_too() -> None:
    cluster = _stalled(RaftOptions(pre_vote=False))
    _campaign(cluster, "c", rounds=2)
    c = cluster.node("c")
    assert c.role is Role.CANDIDATE
    stall = c.status().stalled
    assert stall is not None
    assert stall.term == c.term
    assert set(stall.withholding) == {"a", "b"}


def test_one_withholding_voter_of_three_is_no_stall() -> None:
    cluster = Cluster(ABC)
    cluster.elect("a")
    cluster.commit("a", PAYLOADS)
    cluster.restore("c", RestoredState.joining())
    cluster.crash("a")
    cluster.restart("a")
    _campaign(cluster, "b")
    assert cluster.leader() == "b"
    assert all(cluster.node(n).status().stalled is None for n in ABC)


def test_forced_new_cluster_elects_the_survivor_alone_and_commits_its_whole_log() -> None:
    cluster = _stalled()
    _campaign(cluster, "c")
    c = cluster.restart("c")
    held = c.last_index
    forced = c.force_new_cluster()
    assert isinstance(forced, ProposalId)
    assert forced.index == held + 1
    cluster.drain("c")
    assert c.config.voters == {"c"}
    assert not c.config.learners
    cluster.elect("c")
    assert c.commit_index >= forced.index
    assert cluster.applied_payloads("c") == PAYLOADS
    assert c.status().stalled is None


def test_the_others_are_added_back_empty_and_catch_up() -> None:
    cluster = _stalled()
    _campaign(cluster, "c")
    c = cluster.restart("c")
    assert isinstance(c.force_new_cluster(), ProposalId)
    cluster.drain("c")
    cluster.elect("c")
    for node_id in ("a", "b"):
        cluster.restore(node_id, RestoredState.joining())
        assert isinstance(c.add_member(node_id), ProposalId)
        cluster.drain("c")
        for _ in range(4):
            cluster.heartbeat("c")
    assert c.config.voters == {"a", "b", "c"}
    cluster.commit("c", [b"after"])
    for node_id in ABC:
        assert cluster.applied_payloads(node_id) == [*PAYLOADS, b"after"], node_id
    cluster.crash("c")  # the cluster survives the loss of the forced survivor now
    cluster.elect("a")
    cluster.commit("a", [b"without c"])
    assert cluster.applied_payloads("b")[-1] == b"without c"


def test_force_new_cluster_refuses_without_a_log_or_after_the_first_input() -> None:
    cluster = Cluster(ABC, joining=["d"])
    refusal = cluster.node("d").force_new_cluster()
    assert isinstance(refusal, Refusal)
    assert refusal.reason is RefusalReason.INVALID_ARGUMENT
    assert "nothing to recover" in refusal.message
    cluster.elect("a")
    late = cluster.node("a").force_new_cluster()
    assert isinstance(late, Refusal)
    assert "first input" in late.message
