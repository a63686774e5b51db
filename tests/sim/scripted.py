"""Scripted adversarial schedules shared by the scenario tests and the broken-core tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from replobj.raft import ProposalId, RaftOptions, Role
from replobj.raft import messages as msg
from replobj.sim import NetworkFaults, SimCluster, SimParams
from replobj.sim.simnode import SimNode

LINKS = NetworkFaults(min_latency=1, max_latency=4)


def run_until(
    cluster: SimCluster, condition: Callable[[], bool], what: str, timeouts: int = 30
) -> None:
    """Run until ``condition()`` holds, failing with the cluster's status if it does not."""
    deadline = cluster.now + timeouts * cluster.params.election_ticks
    if not cluster.run_until_true(condition, deadline, 5):
        raise AssertionError(
            f"scripted scenario stuck waiting for {what}\n{cluster.status_table()}"
        )


def only_links_through(cluster: SimCluster, hub: str, spokes: list[str]) -> list[tuple[str, str]]:
    """Cut every link among ``spokes`` so that only ``hub`` can gather their votes."""
    links = [(a, b) for a in spokes for b in spokes if a != b]
    return cluster.network.cut(links)


def figure8(seed: int = 8) -> tuple[SimCluster, bytes]:
    """The schedule of Figure 8 of the Raft paper (§5.4.2), on five nodes.

    S1 leads and replicates X to S2 only, then crashes; S5 leads a later term, appends
    its own no-op at X's index but sends nothing, and crashes; S1 returns as leader and
    copies X (an entry of an older term) to a majority while its own no-op is dropped;
    S1 crashes; S5 returns and is elected. A core that commits X by counting replicas
    has now lost a committed entry; a correct core never committed X.
    Returns the cluster (D leads) and X.
    """
    options = RaftOptions(max_append_entries=1, max_inflight_appends=1, check_quorum=False)
    names = [f"n{i}" for i in range(1, 6)]
    cluster = SimCluster(
        seed, names, SimParams(options=options), LINKS, replay=f"tests/sim figure8(seed={seed})"
    )
    s1 = _leader(cluster)
    s2, s3, s4, s5 = (cluster.nodes[n] for n in names if n != s1.id)
    cut = cluster.network.cut(
        [(s1.id, o.id) for o in (s3, s4, s5)] + [(o.id, s1.id) for o in (s3, s4, s5)]
    )
    payload = b"figure-8 X"
    proposal = s1.raft.propose(payload)
    assert isinstance(proposal, ProposalId), proposal
    index = proposal.index
    cluster.drive(s1)
    run_until(
        cluster,
        lambda: all(n.storage.durable.entry(index) is not None for n in (s1, s2)),
        "X durable on S1 and S2",
    )
    cluster.crash(s1.id)
    cluster.network.restore(cut)

    cluster.isolate(s2.id)
    only_links_through(cluster, s5.id, [s3.id, s4.id])
    cluster.intercept = lambda src, _dst, m: (
        None if src == s5.id and isinstance(m, msg.AppendEntries) else m
    )

    def s5_holds_own_entry() -> bool:
        own = s5.storage.durable.entry(index)
        return s5.raft.role is Role.LEADER and own is not None and own.term == s5.raft.term

    run_until(cluster, s5_holds_own_entry, "S5 leading with its own entry at X's index")
    cluster.crash(s5.id)
    cluster.intercept = None
    cluster.heal()

    cluster.restart(s1.id)
    spokes = only_links_through(cluster, s1.id, [s2.id, s3.id, s4.id])
    cluster.intercept = lambda src, _dst, m: _strip_own_term(m, s1) if src == s1.id else m

    def s3_or_s4_hold_x() -> bool:
        return any(
            (e := n.storage.durable.entry(index)) is not None and e.payload == payload
            for n in (s3, s4)
        )

    run_until(cluster, lambda: s1.raft.role is Role.LEADER, "S1 leading again")
    run_until(cluster, s3_or_s4_hold_x, "X on a majority")
    cluster.run_until(cluster.now + 2 * cluster.params.election_ticks)
    cluster.crash(s1.id)
    cluster.intercept = None
    cluster.network.restore(spokes)

    cluster.restart(s5.id)
    only_links_through(cluster, s5.id, [s2.id, s3.id, s4.id])
    run_until(cluster, lambda: s5.raft.role is Role.LEADER, "S5 leading again")
    cluster.heal()
    cluster.run_until(cluster.now + 2 * cluster.params.election_ticks)
    return cluster, payload


def stale_read(seed: int = 9) -> tuple[SimCluster, int | None]:
    """A deposed leader (no check-quorum, so it never steps down) is asked for a read.

    The majority side has elected a new leader and committed more entries; the read on
    the old leader must not be answered. Returns the cluster and the read's id.
    """
    options = RaftOptions(check_quorum=False)
    cluster = SimCluster(
        seed,
        ["n1", "n2", "n3", "n4", "n5"],
        SimParams(options=options),
        LINKS,
        replay=f"tests/sim stale_read(seed={seed})",
    )
    old = _leader(cluster)
    cluster.partition([old.id])
    run_until(
        cluster,
        lambda: (leader := cluster.leader()) is not None and leader.id != old.id,
        "a majority leader",
    )
    for _ in range(3):
        cluster.propose([cluster.next_payload()])
    run_until(cluster, lambda: cluster.checker.max_commit > old.raft.commit_index, "commits")
    assert old.raft.role is Role.LEADER
    rid = cluster.request_read(old.id)
    cluster.run_until(cluster.now + 3 * cluster.params.election_ticks)
    return cluster, rid


def acknowledged_write_survives_crash(seed: int = 10) -> tuple[SimCluster, bytes]:
    """Crash a follower and the leader right after a write commits, then elect again.

    Slow disks (every fsync takes 50 ticks) and a third node partitioned away: the leader
    commits X once its own disk and the one follower's acknowledgement hold it. That
    follower crashes at once, then the leader; the follower restarts and the third node
    rejoins. If the follower acknowledged X before its fsync completed, X is gone from
    every running log although it was committed.
    """
    params = SimParams(fsync_min=50, fsync_max=50, options=RaftOptions(check_quorum=False))
    cluster = SimCluster(
        seed, ["n1", "n2", "n3"], params, LINKS, replay=f"tests/sim early_ack(seed={seed})"
    )
    leader = _leader(cluster)
    follower, outsider = (cluster.nodes[n] for n in sorted(cluster.nodes) if n != leader.id)
    cluster.isolate(outsider.id)
    payload = b"acknowledged X"
    proposal = leader.raft.propose(payload)
    assert isinstance(proposal, ProposalId), proposal
    cluster.drive(leader)
    deadline = cluster.now + 20 * cluster.params.election_ticks
    committed = cluster.run_until_true(
        lambda: leader.raft.commit_index >= proposal.index, deadline, 1
    )
    assert committed, cluster.status_table()
    cluster.crash(follower.id)
    cluster.crash(leader.id)
    cluster.restart(follower.id)
    cluster.heal()
    run_until(cluster, lambda: cluster.leader() is not None, "a new leader")
    return cluster, payload


def _strip_own_term(message: msg.Message, leader: SimNode) -> msg.Message:
    """Remove the leader's own-term entries from an AppendEntries (they never arrive)."""
    if not isinstance(message, msg.AppendEntries):
        return message
    kept = tuple(e for e in message.entries if e.term != leader.raft.term)
    return dataclasses.replace(message, entries=kept)


def _leader(cluster: SimCluster) -> SimNode:
    leader = cluster.wait_for_leader(30 * cluster.params.election_ticks)
    assert leader is not None, cluster.status_table()
    return leader
