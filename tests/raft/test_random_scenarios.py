"""Seeded random scenarios over the hand-driven harness: every contract check of the
harness plus Leader Completeness and Log Matching, then heal and demand progress.

A small complement to ``tests/sim`` (which owns the large seeded runs): here the driver
itself is strict (durable acknowledgements, saved votes, staged snapshots). A failure
prints the seed; replay it with
``.venv/bin/pytest "tests/raft/test_random_scenarios.py::test_random_scenario[SEED]"``.
"""

from __future__ import annotations

import random

import pytest

from replobj.raft import ApplyEntries, LogIndex, ProposalId, RaftOptions, Role, Term

from .harness import Cluster

SEEDS = range(40)
STEPS = 1000


class _Tracker:
    """For each applied index, the lowest term of a node that applied it: the entry was
    committed in that term or earlier, so every leader of a later term must hold it."""

    def __init__(self) -> None:
        self.bound: dict[LogIndex, Term] = {}
        self.seen: dict[str, int] = {}

    def update(self, cluster: Cluster) -> None:
        for node_id, store in cluster.stores.items():
            term = cluster.nodes[node_id].term
            for action in store.trace[self.seen.get(node_id, 0) :]:
                if isinstance(action, ApplyEntries):
                    for entry in action.entries:
                        self.bound[entry.index] = min(self.bound.get(entry.index, term), term)
            self.seen[node_id] = len(store.trace)


def _check_leader_completeness(cluster: Cluster, tracker: _Tracker) -> None:
    """§5.4.3: a leader's log holds every entry committed in an earlier term."""
    tracker.update(cluster)
    for node_id in cluster.running():
        node = cluster.nodes[node_id]
        if node.role is not Role.LEADER:
            continue
        for index, (who, entry) in cluster.applied_at.items():
            if node.term <= tracker.bound.get(index, 0) or index <= node.snapshot.last_index:
                continue
            held = node.term_at(index)
            assert held == entry.term, (
                f"leader {node_id} has term {held} at {index}; {who} applied {entry}"
            )


def _check_log_matching(cluster: Cluster) -> None:
    """§5.3: logs that agree on an entry's term agree on every entry before it."""
    running = cluster.running()
    for i, a in enumerate(running):
        for b in running[i + 1 :]:
            na, nb = cluster.nodes[a], cluster.nodes[b]
            lo = max(na.snapshot.last_index, nb.snapshot.last_index) + 1
            for index in range(min(na.last_index, nb.last_index), lo - 1, -1):
                if na.term_at(index) == nb.term_at(index):
                    same = na.entries_between(lo, index + 1) == nb.entries_between(lo, index + 1)
                    assert same, f"{a} and {b} agree at {index} but differ before"
                    break


def _random_step(cluster: Cluster, rng: random.Random, step: int) -> None:
    running = cluster.running()
    leaders = [n for n in running if cluster.nodes[n].role is Role.LEADER]
    roll = rng.random()
    if roll < 0.55 and cluster.network:
        env = cluster.network.pop(rng.randrange(len(cluster.network)))
        if rng.random() < 0.1:
            cluster.network.append(env)
        if rng.random() > 0.05:
            cluster.inject(env)
    elif roll < 0.65:
        node_id = rng.choice(running)
        pending = len(cluster.stores[node_id].pending)
        if pending:
            cluster.persist(node_id, rng.randint(1, pending))
    elif roll < 0.70:
        node_id = rng.choice(running)
        if cluster.nodes[node_id].role is Role.LEADER or rng.random() < 0.1:
            cluster.timeout(node_id)
    elif roll < 0.77 and leaders:
        leader = rng.choice(leaders)
        cluster.nodes[leader].propose(b"p%d" % step)
        cluster.drain(leader)
    elif roll < 0.80:
        node = cluster.nodes[rng.choice(running)]
        if node.applied_index > node.snapshot.last_index:
            index = rng.randint(node.snapshot.last_index + 1, node.applied_index)
            cluster.take_snapshot(node.id, index)
    elif roll < 0.82:
        node_id = rng.choice(list(cluster.nodes))
        if node_id in cluster.down:
            cluster.restart(node_id)
        elif len(cluster.down) < (len(cluster.nodes) - 3) // 2 + 1:
            cluster.crash(node_id)
    elif roll < 0.84 and leaders:
        chief = cluster.nodes[rng.choice(leaders)]
        target = rng.choice(list(cluster.nodes))
        if rng.random() < 0.5:
            chief.add_member(target, promote=rng.random() < 0.7)
        elif len(chief.config.voters) > 3 or target in chief.config.learners:
            chief.remove_member(target)
        cluster.drain(chief.id)
    elif roll < 0.85 and leaders:
        leader_id = rng.choice(leaders)
        cluster.nodes[leader_id].transfer_leadership()
        cluster.drain(leader_id)
    elif roll < 0.87:
        node_id = rng.choice(running)
        cluster.nodes[node_id].read_index(step)
        cluster.drain(node_id)
    elif roll < 0.88:
        node_id = rng.choice(running)
        cluster.nodes[node_id].forward_proposal(step, [b"f%d" % step])
        cluster.drain(node_id)
    elif roll < 0.90:
        if rng.random() < 0.5:
            cluster.isolate(rng.choice(list(cluster.nodes)))
        else:
            cluster.heal()


def _heal_and_commit(cluster: Cluster, rng: random.Random) -> None:
    """Liveness: once every fault is healed a leader emerges and a new entry commits."""
    cluster.heal()
    for node_id in list(cluster.down):
        cluster.restart(node_id)
    cluster.auto_persist = True
    cluster.persist_all()
    cluster.deliver_all()
    leader = None
    for _ in range(40):
        leader = cluster.leader()
        if leader is not None:
            cluster.heartbeat(leader)
            if cluster.nodes[leader].role is Role.LEADER:
                break
        voters = [n for n in cluster.nodes if cluster.nodes[n].config.is_voter(n)]
        cluster.timeout(rng.choice(voters))
        cluster.deliver_all()
    assert leader is not None, "no leader after healing"
    proposal = cluster.nodes[leader].propose(b"final")
    for _ in range(20):
        if isinstance(proposal, ProposalId):
            break
        cluster.heartbeat(leader)
        proposal = cluster.nodes[leader].propose(b"final")
    assert isinstance(proposal, ProposalId), f"leader {leader} keeps refusing: {proposal}"
    cluster.drain(leader)
    cluster.deliver_all()
    for _ in range(6):
        cluster.heartbeat(leader)
    for member in cluster.nodes[leader].config.members:
        assert b"final" in cluster.applied_payloads(member), cluster.nodes[member].status()


@pytest.mark.parametrize("seed", SEEDS)
def test_random_scenario(seed: int) -> None:
    """Random faults and requests keep every safety property, then the cluster recovers."""
    rng = random.Random(seed)
    ids = ["a", "b", "c", "d", "e"][: rng.choice([3, 5])]
    options = RaftOptions(
        pre_vote=rng.random() < 0.7,
        check_quorum=rng.random() < 0.7,
        max_append_entries=rng.choice([1, 2, 8]),
        max_inflight_appends=rng.choice([1, 2, 4]),
        snapshot_chunk_bytes=rng.choice([16, 64, 4096]),
        election_ticks=rng.choice([2, 3]),
        promotion_lag=rng.choice([0, 2]),
    )
    print(f"seed={seed} ids={ids} options={options}")
    cluster = Cluster(ids, joining=["x", "y"], options=options, auto_persist=False)
    tracker = _Tracker()
    for step in range(STEPS):
        _random_step(cluster, rng, step)
        _check_leader_completeness(cluster, tracker)
        _check_log_matching(cluster)
    _heal_and_commit(cluster, rng)
