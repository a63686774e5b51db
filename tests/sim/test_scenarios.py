"""Fixed simulated scenarios with specific expected outcomes (all checks run throughout)."""

from __future__ import annotations

from replobj.raft import ProposalId, ProposalStatus, RaftOptions, Refusal, Role
from replobj.sim import NetworkFaults, SimCluster, SimParams
from replobj.sim.simnode import SimNode

FAST = NetworkFaults(min_latency=1, max_latency=4)


def make_cluster(seed: int, size: int, **params: object) -> SimCluster:
    """A cluster of ``n1..n<size>`` on a reliable network; prints the seed for replay."""
    print(f"scenario seed {seed}, {size} nodes")
    return SimCluster(
        seed,
        [f"n{i}" for i in range(1, size + 1)],
        SimParams(**params),  # type: ignore[arg-type]
        FAST,
        replay=f"pytest tests/sim/test_scenarios.py (seed {seed})",
    )


def elect(cluster: SimCluster) -> SimNode:
    """Wait for a leader that has committed an entry of its term."""
    leader = cluster.wait_for_leader(20 * cluster.params.election_ticks)
    assert leader is not None, cluster.status_table()
    return leader


def commit_payloads(cluster: SimCluster, count: int, *, everywhere: bool = True) -> list[bytes]:
    """Propose ``count`` payloads one heartbeat apart; wait until applied (by all members)."""
    payloads = []
    for _ in range(count):
        payload = cluster.next_payload()
        assert not isinstance(cluster.propose([payload]), Refusal)
        payloads.append(payload)
        cluster.run_until(cluster.now + cluster.params.heartbeat_ticks)
    last = payloads[-1]

    def applied() -> bool:
        index = cluster.checker.payload_index.get(last)
        if index is None:
            return False
        leader = cluster.leader()
        if not everywhere:
            return leader is not None and leader.machine.applied_index >= index
        return cluster.applied_everywhere(index)

    deadline = cluster.now + 20 * cluster.params.election_ticks
    assert cluster.run_until_true(applied, deadline, 10), cluster.status_table()
    return payloads


def assert_converged(cluster: SimCluster, payloads: list[bytes]) -> None:
    """Every running member applied the same state, containing ``payloads`` in order."""
    final = cluster.commit_fresh_proposal(cluster.now + 20 * cluster.params.election_ticks)
    assert final is not None, cluster.status_table()
    members = cluster.leader().raft.config.members  # type: ignore[union-attr]
    states = {n: cluster.nodes[n].machine for n in members}
    digests = {m.digest for m in states.values() if m.applied_index == final}
    assert len(digests) == 1, cluster.status_table()
    for machine in states.values():
        positions = [machine.commands.index(p) for p in payloads]
        assert positions == sorted(positions)
    cluster.final_check()


def test_partition_heal_elects_majority_leader_and_drops_minority_writes() -> None:
    cluster = make_cluster(11, 5)
    old = elect(cluster)
    before = commit_payloads(cluster, 10)
    minority = [old.id, next(n for n in sorted(cluster.nodes) if n != old.id)]
    cluster.partition(minority)
    stranded = old.raft.propose(b"stranded")
    cluster.drive(old)
    assert isinstance(stranded, ProposalId)
    cluster.run_until(cluster.now + 3 * cluster.params.election_ticks)
    new = elect(cluster)
    assert new.id not in minority
    assert new.raft.term > stranded.term
    assert old.raft.role is not Role.LEADER, "check-quorum must depose the minority leader"
    during = commit_payloads(cluster, 5, everywhere=False)
    cluster.heal()
    assert_converged(cluster, before + during)
    assert old.raft.proposal_status(stranded) is ProposalStatus.REJECTED
    assert b"stranded" not in cluster.checker.payload_index


def test_leader_crash_elects_new_leader_and_restarted_node_catches_up() -> None:
    cluster = make_cluster(12, 3)
    old = elect(cluster)
    before = commit_payloads(cluster, 10)
    cluster.crash(old.id)
    new = elect(cluster)
    assert new.id != old.id
    during = commit_payloads(cluster, 10, everywhere=False)
    cluster.restart(old.id)
    assert_converged(cluster, before + during)
    assert old.machine.commands[: len(before + during)] == before + during


def test_membership_changes_under_load() -> None:
    cluster = make_cluster(13, 3, options=RaftOptions(promotion_lag=4))
    elect(cluster)
    payloads = commit_payloads(cluster, 5)
    assert not isinstance(cluster.add_member("n4"), Refusal)
    payloads += commit_payloads(cluster, 10)
    assert not isinstance(cluster.add_member("n5", promote=False), Refusal)
    payloads += commit_payloads(cluster, 10)
    leader = elect(cluster)
    assert "n4" in leader.raft.config.voters
    assert "n5" in leader.raft.config.learners
    removed = next(n for n in ("n2", "n3") if n != leader.id)
    assert not isinstance(cluster.remove_member(removed), Refusal)
    payloads += commit_payloads(cluster, 10)
    assert not isinstance(cluster.remove_member("n5"), Refusal)
    payloads += commit_payloads(cluster, 5)
    leader = elect(cluster)
    assert removed not in leader.raft.config.members
    assert "n5" not in leader.raft.config.members
    assert not leader.raft.config.is_joint
    cluster.retire(removed)
    assert_converged(cluster, payloads)


def test_lagging_node_receives_snapshot_in_chunks() -> None:
    options = RaftOptions(snapshot_chunk_bytes=64)
    cluster = make_cluster(14, 3, snapshot_every=10, options=options)
    elect(cluster)
    lagging = next(n for n in cluster.live() if n.raft.role is not Role.LEADER)
    cluster.crash(lagging.id)
    payloads = commit_payloads(cluster, 60, everywhere=False)
    leader = elect(cluster)
    assert leader.raft.snapshot.last_index > lagging.storage.durable.last_index
    cluster.restart(lagging.id)
    assert_converged(cluster, payloads)
    assert cluster.stats.snapshots_installed >= 1
    assert lagging.storage.snapshot_meta.last_index > 0
    assert len(lagging.storage.snapshot_data) > 64


def test_removed_leader_steps_down_and_cluster_continues() -> None:
    cluster = make_cluster(15, 5)
    old = elect(cluster)
    payloads = commit_payloads(cluster, 5)
    assert not isinstance(cluster.remove_member(old.id), Refusal)
    deadline = cluster.now + 20 * cluster.params.election_ticks

    def replaced() -> bool:
        leader = cluster.leader()
        return leader is not None and leader.id != old.id

    assert cluster.run_until_true(replaced, deadline, 10), cluster.status_table()
    new = elect(cluster)
    assert old.id not in new.raft.config.members
    assert old.raft.role is not Role.LEADER
    payloads += commit_payloads(cluster, 5)
    assert_converged(cluster, payloads)


def test_leadership_transfer_to_named_node() -> None:
    cluster = make_cluster(16, 5)
    old = elect(cluster)
    commit_payloads(cluster, 3)
    target = next(n for n in sorted(cluster.nodes) if n != old.id)
    assert cluster.transfer(target) is None
    cluster.run_until(cluster.now + cluster.params.election_ticks)
    leader = cluster.leader()
    assert leader is not None, cluster.status_table()
    assert leader.id == target, cluster.status_table()
    assert old.raft.role is Role.FOLLOWER


def test_reads_on_followers_are_answered_at_the_commit_index() -> None:
    cluster = make_cluster(17, 3)
    elect(cluster)
    commit_payloads(cluster, 5)
    required = cluster.checker.max_commit
    ids = [cluster.request_read(n.id) for n in cluster.live()]
    assert all(rid is not None for rid in ids)
    cluster.run_until(cluster.now + cluster.params.election_ticks)
    assert cluster.stats.reads_ready == len(ids)
    assert not cluster.reads
    assert all(n.machine.applied_index >= required for n in cluster.live())
