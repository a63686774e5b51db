"""Client requests through any member (thesis §6.2): proposal forwarding and the leader's
payload hook."""

from __future__ import annotations

from replobj.raft import (
    AppendLog,
    ProposalFailed,
    ProposalForwarded,
    ProposalId,
    ProposalStatus,
    Refusal,
    RefusalReason,
)
from replobj.raft import messages as msg

from .harness import Cluster, of_type, sent

ABC = ["a", "b", "c"]


def _elected() -> Cluster:
    cluster = Cluster(ABC)
    cluster.elect("a")
    return cluster


def test_thesis_6_2_forward_on_the_leader_proposes_directly() -> None:
    """On the leader, forward_proposal is propose_batch answered by an action."""
    cluster = _elected()
    leader = cluster.node("a")
    first = leader.last_index + 1
    assert leader.forward_proposal(1, [b"x", b"y"]) is None
    cluster.drain("a")
    expected = (ProposalId(leader.term, first), ProposalId(leader.term, first + 1))
    assert cluster.stores["a"].forwarded == [ProposalForwarded(1, expected)]
    cluster.deliver_all()
    cluster.heartbeat("a")
    assert cluster.applied_payloads("c") == [b"x", b"y"]


def test_thesis_6_2_follower_forwards_proposals_to_the_leader() -> None:
    """§6.2: a server that is not the leader passes the request on to the leader; the
    follower learns the proposal ids and can watch them commit locally."""
    cluster = _elected()
    follower = cluster.node("b")
    assert follower.forward_proposal(7, [b"via-b"]) is None
    actions = cluster.drain("b")
    requests = sent(actions, msg.ProposeRequest, to="a")
    assert [(r.request_id, r.payloads) for r in requests] == [(7, (b"via-b",))]
    cluster.deliver_all()
    cluster.heartbeat("a")
    answers = cluster.stores["b"].forwarded
    assert len(answers) == 1
    answer = answers[0]
    assert isinstance(answer, ProposalForwarded)
    assert answer.request_id == 7
    (proposal,) = answer.proposals
    assert follower.proposal_status(proposal) is ProposalStatus.COMMITTED
    assert cluster.applied_payloads("b") == [b"via-b"]


def test_thesis_6_2_forward_without_a_known_leader_is_refused() -> None:
    """With no leader known there is nobody to forward to: refuse at once."""
    cluster = Cluster(ABC)
    refusal = cluster.node("b").forward_proposal(1, [b"x"])
    assert isinstance(refusal, Refusal)
    assert refusal.reason is RefusalReason.NO_LEADER


def test_thesis_6_2_forward_reaching_a_non_leader_fails_with_its_reason() -> None:
    """A ProposeRequest that lands on a follower is answered with a refusal, which the
    origin reports as ProposalFailed (nothing was appended anywhere)."""
    cluster = _elected()
    term = cluster.node("c").term
    last = cluster.node("c").last_index
    actions = cluster.send("b", "c", msg.ProposeRequest(term, "b", 3, (b"x",)))
    replies = sent(actions, msg.ProposeReply, to="b")
    assert [r.refusal for r in replies] == [RefusalReason.NOT_LEADER.value]
    assert cluster.node("c").last_index == last
    cluster.deliver_all()
    failed = cluster.stores["b"].forwarded
    assert [(type(f), f.request_id) for f in failed] == [(ProposalFailed, 3)]
    assert isinstance(failed[0], ProposalFailed)
    assert failed[0].reason is RefusalReason.NOT_LEADER


def test_thesis_3_10_forwarded_proposal_fails_during_transfer() -> None:
    """§3.10: during a leadership transfer the leader refuses forwarded proposals too."""
    cluster = _elected()
    cluster.isolate("c")
    cluster.commit("a", [b"1"])
    assert cluster.node("a").transfer_leadership("c") is None
    cluster.node("b").forward_proposal(4, [b"x"])
    cluster.drain("b")
    cluster.deliver(kind=msg.ProposeRequest)
    cluster.deliver(kind=msg.ProposeReply)
    failed = cluster.stores["b"].forwarded
    assert len(failed) == 1
    assert isinstance(failed[0], ProposalFailed)
    assert failed[0].reason is RefusalReason.TRANSFER_IN_PROGRESS


def test_empty_forward_is_answered_with_no_proposals() -> None:
    """An empty request is answered (so the caller never waits) and appends nothing."""
    cluster = _elected()
    cluster.node("b").forward_proposal(9, [])
    cluster.drain("b")
    cluster.deliver_all()
    assert cluster.stores["b"].forwarded == [ProposalForwarded(9, ())]
    assert not [a for a in of_type(cluster.trace("a"), AppendLog) if not a.entries]


def test_odd_propose_replies_are_ignored_or_mapped() -> None:
    """A malformed ProposeReply is dropped; an unknown refusal name still fails the request."""
    cluster = _elected()
    node = cluster.node("b")
    ignored = node.ignored_messages
    term = node.term
    cluster.send("a", "b", msg.ProposeReply(term, "a", 1, term, 0, 1))
    cluster.send("a", "b", msg.ProposeReply(term, "a", 2, term, 5, -1))
    assert node.ignored_messages == ignored + 2
    assert cluster.stores["b"].forwarded == []
    cluster.send("a", "b", msg.ProposeReply(term, "a", 3, 0, 0, 0, "no-such-reason"))
    (failed,) = cluster.stores["b"].forwarded
    assert isinstance(failed, ProposalFailed)
    assert failed.request_id == 3


def test_leader_payload_hook_runs_once_on_the_leader() -> None:
    """``prepare_payload`` (e.g. stamping a leader-assigned time, pitfall 20) runs on the
    leader when it appends; followers apply the stamped bytes unchanged."""
    calls: list[bytes] = []

    def stamp(payload: bytes) -> bytes:
        calls.append(payload)
        return b"stamped:" + payload

    cluster = Cluster(ABC, prepare_payload=stamp)
    cluster.elect("a")
    cluster.commit("a", [b"x"])
    assert calls == [b"x"]
    for node_id in ABC:
        assert cluster.applied_payloads(node_id) == [b"stamped:x"]


def test_leader_payload_hook_failure_refuses_the_proposal() -> None:
    """If the hook raises, the proposal is refused (INVALID_ARGUMENT) and nothing appended."""

    def reject(payload: bytes) -> bytes:
        raise ValueError(f"bad payload {payload!r}")

    cluster = Cluster(ABC, prepare_payload=reject)
    cluster.elect("a")
    leader = cluster.node("a")
    last = leader.last_index
    refusal = leader.propose(b"x")
    assert isinstance(refusal, Refusal)
    assert refusal.reason is RefusalReason.INVALID_ARGUMENT
    assert "bad payload" in refusal.message
    assert leader.last_index == last
    assert not of_type(cluster.drain("a"), AppendLog)


def test_forward_sent_in_an_older_term_is_still_served_by_the_leader() -> None:
    """Forwarding does not depend on the term: the current leader appends a request that a
    member sent while it knew an older term, and answers it."""
    cluster = _elected()
    term = cluster.node("a").term
    actions = cluster.send("b", "a", msg.ProposeRequest(term - 1, "b", 5, (b"late",)))
    replies = sent(actions, msg.ProposeReply, to="b")
    assert [(r.request_id, r.count, r.refusal) for r in replies] == [(5, 1, "")]
