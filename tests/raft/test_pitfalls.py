"""Pitfalls of /work/shared/RAFT-PITFALLS.md that no other core test pinned down sharply.

Each test is named after its pitfall; docs/pitfalls.md maps every pitfall to the tests that
catch it, including these. They drive the pure core through the hand-driven harness.
"""

from __future__ import annotations

import random

from replobj.raft import (
    ClusterConfig,
    Entry,
    InstallSnapshot,
    ProposalId,
    RaftNode,
    RaftOptions,
    RestoredState,
    Role,
    SnapshotMeta,
)
from replobj.raft import messages as msg
from replobj.raft.messages import AppendEntriesReply

from .harness import Cluster

ABC = ["a", "b", "c"]


def _settle(cluster: Cluster, leader: str, rounds: int = 4) -> None:
    cluster.drain(leader)
    cluster.deliver_all()
    for _ in range(rounds):
        cluster.heartbeat(leader)


def test_pitfall_13_learner_is_promoted_only_once_its_log_has_caught_up() -> None:
    """Pitfall 13 (thesis §4.2.1): a learner marked for promotion becomes a voter only when
    its acknowledged log is within ``promotion_lag`` entries of the leader's, never on its
    first acknowledgement. One entry per message makes the catch-up take many acks."""
    options = RaftOptions(promotion_lag=2, max_append_entries=1)
    cluster = Cluster(ABC, joining=["d"], options=options)
    cluster.elect("a")
    leader = cluster.node("a")
    cluster.commit("a", [b"%d" % i for i in range(10)])
    cluster.isolate("d")
    assert isinstance(leader.add_member("d"), ProposalId)
    _settle(cluster, "a", rounds=1)
    assert leader.config.learners == {"d"}
    assert leader.config_committed
    cluster.heal()
    log_at_heal = leader.last_index
    acks: list[int] = []
    for _ in range(500):
        if "d" in leader.config.voters:
            break
        if not cluster.network:
            cluster.timeout("a")
            continue
        last_before = leader.last_index
        env = cluster.deliver(limit=1)[0]
        reply = env.message
        if env.src == "d" and isinstance(reply, AppendEntriesReply) and reply.success:
            acks.append(reply.match_index)
            if "d" in leader.config.voters:
                assert reply.match_index + options.promotion_lag >= last_before, acks
    assert "d" in leader.config.voters, f"never promoted; acks {acks}"
    assert acks[0] + options.promotion_lag < log_at_heal, f"catch-up was trivial: {acks}"
    assert len(acks) >= 3, acks


def test_pitfall_15_adding_an_unreachable_node_does_not_stall_the_cluster() -> None:
    """Pitfall 15 (PySyncObj #78): a node added while it is down joins as a learner, so the
    quorum stays that of the old voters; once it starts it catches up and is promoted."""
    cluster = Cluster(ABC, joining=["d"])
    cluster.elect("a")
    leader = cluster.node("a")
    cluster.crash("d")
    assert isinstance(leader.add_member("d"), ProposalId)
    _settle(cluster, "a", rounds=2)
    assert leader.config.voters == {"a", "b", "c"}
    assert leader.config.learners == {"d"}
    cluster.crash("c")
    cluster.commit("a", [b"while-d-is-down"])
    assert cluster.applied_payloads("b") == [b"while-d-is-down"]
    cluster.restart("c")
    cluster.restart("d")
    _settle(cluster, "a")
    assert leader.config.voters == {"a", "b", "c", "d"}
    assert leader.config_committed
    assert cluster.applied_payloads("d") == [b"while-d-is-down"]


def test_pitfall_15_cluster_grown_at_run_time_elects_without_its_founders() -> None:
    """Pitfall 15 (PySyncObj #89): grow {a,b,c} to five members one change at a time, crash
    two founders, restart the other three from their durable stores: they know the
    five-member configuration from their logs, elect a leader and commit."""
    cluster = Cluster(ABC, joining=["d", "e"])
    cluster.elect("a")
    leader = cluster.node("a")
    for new in ("d", "e"):
        assert isinstance(leader.add_member(new), ProposalId)
        _settle(cluster, "a")
        assert new in leader.config.voters
        assert leader.config_committed
    cluster.commit("a", [b"before"])
    cluster.take_snapshot("a")
    cluster.crash("a")
    cluster.crash("b")
    for survivor in ("c", "d", "e"):
        restarted = cluster.restart(survivor)
        assert restarted.config.voters == {"a", "b", "c", "d", "e"}, survivor
    cluster.elect("d")
    assert cluster.node("d").role is Role.LEADER
    cluster.commit("d", [b"after"])
    for survivor in ("c", "d", "e"):
        assert cluster.applied_payloads(survivor) == [b"before", b"after"], survivor


def _random_message(rng: random.Random, senders: list[str]) -> msg.Message:
    """A well-formed message with random fields, as a confused or buggy peer might send."""
    sender = rng.choice(senders)
    term = rng.randint(0, 6)

    def index() -> int:
        return rng.randint(0, 12)

    kind = rng.randrange(11)
    if kind == 0:
        return msg.RequestVote(
            term, sender, index(), rng.randint(0, 6), rng.random() < 0.5, rng.random() < 0.2
        )
    if kind == 1:
        return msg.RequestVoteReply(term, sender, rng.random() < 0.7, rng.random() < 0.5)
    if kind == 2:
        prev = index()
        entries = tuple(
            Entry(rng.randint(1, max(term, 1)), prev + 1 + k) for k in range(rng.randint(0, 3))
        )
        return msg.AppendEntries(
            term, sender, prev, rng.randint(0, 6), entries, index(), rng.randint(0, 5)
        )
    if kind == 3:
        return msg.AppendEntriesReply(
            term, sender, rng.random() < 0.5, index(), index(), index(), rng.randint(0, 6)
        )
    if kind == 4:
        meta = SnapshotMeta(index(), rng.randint(0, 6), ClusterConfig(voters=frozenset(ABC)))
        offset = rng.choice([0, 0, 3])
        return msg.InstallSnapshot(term, sender, meta, offset, b"abc", rng.random() < 0.5)
    if kind == 5:
        return msg.InstallSnapshotReply(
            term, sender, index(), rng.randint(0, 4), rng.random() < 0.5, rng.randint(0, 5)
        )
    if kind == 6:
        return msg.TimeoutNow(term, sender)
    if kind == 7:
        return msg.ReadIndexRequest(term, sender, rng.randint(0, 5))
    if kind == 8:
        return msg.ReadIndexReply(term, sender, rng.randint(0, 5), index(), rng.random() < 0.5)
    if kind == 9:
        return msg.ProposeRequest(term, sender, rng.randint(0, 5), (b"x",))
    refusal = rng.choice(["", "not_leader", "no-such-reason"])
    return msg.ProposeReply(
        term, sender, rng.randint(0, 5), rng.randint(0, 6), index(), rng.randint(0, 3), refusal
    )


def _random_input(node: RaftNode, rng: random.Random) -> None:
    """One random input: mostly a peer message, sometimes a timer, proposal, read or report."""
    choice = rng.random()
    if choice < 0.1:
        node.handle_timeout()
    elif choice < 0.15:
        node.propose(b"p")
    elif choice < 0.18:
        node.read_index(rng.randint(0, 5))
    elif choice < 0.2:
        node.handle_log_persisted(node.last_index, node.last_term)
    elif choice < 0.21 and node.applied_index > node.snapshot.last_index:
        node.handle_snapshot_taken(node.snapshot_meta_for(node.applied_index))
    else:
        node.handle_message(_random_message(rng, [*ABC, "stranger"]))
    for action in node.take_actions():
        if isinstance(action, InstallSnapshot):
            node.handle_snapshot_installed(action.meta)


def test_pitfall_28_random_peer_messages_never_raise_out_of_the_core() -> None:
    """Pitfall 28 (PySyncObj #189, #121): an exception in a handler must not take the node
    down. Well-formed messages with random terms, indexes and flags, from members and a
    stranger, mixed with timers, proposals, reads and durability reports, never make the
    core raise; the node reaches every role on the way, so each handler is exercised."""
    roles: set[Role] = set()
    for seed in range(400):
        rng = random.Random(seed)
        options = RaftOptions(pre_vote=rng.random() < 0.5)
        node = RaftNode("a", RestoredState.bootstrap(set(ABC)), options)
        node.take_actions()
        for step in range(200):
            try:
                _random_input(node, rng)
            except Exception as exc:
                raise AssertionError(f"core raised at seed {seed}, step {step}: {exc!r}") from exc
            roles.add(node.role)
    assert roles >= {Role.FOLLOWER, Role.PRE_CANDIDATE, Role.CANDIDATE, Role.LEADER}, roles
