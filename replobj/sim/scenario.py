"""Seeded scenarios: a cluster, a fault schedule and client load, all drawn from one seed.

A run has two phases. During the fault phase clients propose and read while the
schedule drops, duplicates and delays messages, partitions, crashes and restarts
nodes, changes membership and transfers leadership. Then everything heals and every
crashed member restarts, and a fresh proposal must be applied by every member within
a bounded simulated time (liveness).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from replobj.raft import RaftOptions, Refusal, RefusalReason, Role

from .cluster import SimCluster
from .engine import SimParams
from .network import NetworkFaults

FAULT_KINDS = (
    "partition",
    "isolate-leader",
    "one-way",
    "crash",
    "crash-leader",
    "crash-many",
    "add",
    "remove",
    "remove-leader",
    "transfer",
)
"""Fault kinds a schedule draws from; each seed enables a random subset."""

BACKLOG = 48
"""Clients stop proposing while the leader holds this many uncommitted entries (back-pressure)."""

LIVENESS_ELECTION_TIMEOUTS = 20
"""After healing, a fresh proposal must apply everywhere within this many election timeouts."""


@dataclass(frozen=True, slots=True)
class SeedResult:
    """What one seeded run did (it raised instead if any check failed)."""

    seed: int
    size: int
    faults: tuple[str, ...]
    events: int
    leaders: int
    committed: int
    snapshots_installed: int
    reads_ready: int
    elapsed: float


@dataclass(frozen=True, slots=True)
class Plan:
    """The randomly drawn shape of a run."""

    size: int
    params: SimParams
    network: NetworkFaults
    fault_phase: int
    faults: tuple[tuple[int, str, int], ...]
    """``(start, kind, duration)`` triples, sorted by start."""
    propose_every: int
    read_every: int


def draw_plan(rng: random.Random) -> Plan:
    """Draw cluster size, limits, network quality and fault schedule."""
    size = rng.choice((3, 3, 5, 5, 5, 7))
    options = RaftOptions(
        max_append_entries=rng.choice((1, 4, 64)),
        max_append_bytes=rng.choice((40, 256, 1 << 20)),
        max_inflight_appends=rng.choice((1, 4, 32)),
        snapshot_chunk_bytes=rng.choice((64, 512, 1 << 16)),
        election_ticks=rng.choice((5, 10)),
        promotion_lag=rng.choice((0, 8, 64)),
        pre_vote=rng.random() < 0.9,
        check_quorum=rng.random() < 0.9,
    )
    params = SimParams(
        heartbeat_ticks=100 // options.election_ticks,
        fsync_min=1,
        fsync_max=rng.choice((2, 10, 30)),
        snapshot_every=rng.choice((10, 30, 80)),
        coalesce_reports=rng.random() < 0.3,
        install_delay_max=rng.choice((0, 0, 5, 40)),
        options=options,
    )
    network = NetworkFaults(
        loss=rng.choice((0.0, 0.01, 0.05, 0.1, 0.2)),
        duplicate=rng.choice((0.0, 0.02, 0.1)),
        min_latency=1,
        max_latency=rng.choice((3, 8, 20)),
        spike=rng.choice((0.0, 0.01, 0.05)),
        spike_latency=rng.choice((60, 250)),
    )
    election = params.election_ticks
    fault_phase = rng.randint(6, 14) * election
    enabled = [k for k in FAULT_KINDS if rng.random() < 0.45] or [rng.choice(FAULT_KINDS)]
    faults = sorted(
        (
            rng.randrange(election, fault_phase),
            rng.choice(enabled),
            rng.randint(election // 2, 5 * election),
        )
        for _ in range(rng.randint(2, 7))
    )
    return Plan(
        size=size,
        params=params,
        network=network,
        fault_phase=fault_phase,
        faults=tuple(faults),
        propose_every=rng.choice((5, 10, 25)),
        read_every=rng.choice((10, 30)),
    )


class ScheduledRun:
    """Executes one :class:`Plan` on a :class:`SimCluster`."""

    def __init__(self, seed: int, *, verbose: bool = False) -> None:
        self.seed = seed
        rng = random.Random(seed)
        self.plan = draw_plan(rng)
        voters = [f"n{i}" for i in range(1, self.plan.size + 1)]
        self.cluster = SimCluster(
            seed, voters, self.plan.params, self.plan.network, verbose=verbose, rng=rng
        )
        self.rng = rng
        self.next_node = self.plan.size + 1
        self.added = 0

    def run(self) -> SeedResult:
        """Run both phases and the final checks.

        :raises ~replobj.sim.engine.SimulationFailure: if any check fails.
        """
        started = time.perf_counter()
        cluster, plan = self.cluster, self.plan
        for start, kind, duration in plan.faults:
            cluster.at(start, self._fault(kind, duration))
        cluster.at(plan.propose_every, self._client_tick)
        cluster.at(plan.read_every, self._read_tick)
        cluster.run_until(plan.fault_phase)
        cluster.note("*", "phase", "heal everything, restart crashed members")
        cluster.calm()
        limit = LIVENESS_ELECTION_TIMEOUTS * plan.params.election_ticks
        if cluster.commit_fresh_proposal(cluster.now + limit) is None:
            raise cluster.failure(
                f"Liveness: no fresh proposal applied on every member within {limit} ticks "
                f"after healing\n{cluster.status_table()}"
            )
        unsettled = cluster.settle(cluster.now + limit)
        if unsettled is not None:
            raise cluster.failure(f"Liveness: {unsettled}\n{cluster.status_table()}")
        cluster.final_check()
        return SeedResult(
            seed=self.seed,
            size=plan.size,
            faults=tuple(kind for _, kind, _ in plan.faults),
            events=cluster.stats.events,
            leaders=len(cluster.checker.leaders),
            committed=cluster.checker.max_commit,
            snapshots_installed=cluster.stats.snapshots_installed,
            reads_ready=cluster.stats.reads_ready,
            elapsed=time.perf_counter() - started,
        )

    def _client_tick(self) -> None:
        cluster = self.cluster
        if cluster.now >= self.plan.fault_phase:
            return
        count = self.rng.randint(1, 3)
        leader = cluster.leader()
        if leader is not None and leader.raft.last_index - leader.raft.commit_index < BACKLOG:
            cluster.propose([cluster.next_payload() for _ in range(count)])
        cluster.at(cluster.now + self.plan.propose_every, self._client_tick)

    def _read_tick(self) -> None:
        cluster = self.cluster
        live = cluster.live()
        if live:
            cluster.request_read(self.rng.choice(live).id)
        cluster.at(cluster.now + self.plan.read_every, self._read_tick)

    def _fault(self, kind: str, duration: int) -> Callable[[], None]:
        return lambda: self._inject(kind, duration)

    def _inject(self, kind: str, duration: int) -> None:
        cluster, rng = self.cluster, self.rng
        live = cluster.live()
        leader = cluster.leader()
        until = cluster.now + duration
        if kind == "partition" and len(live) > 1:
            side = rng.sample([n.id for n in live], rng.randint(1, len(live) // 2))
            links = cluster.partition(side)
            cluster.at(until, lambda: cluster.heal(links))
        elif kind in ("isolate-leader", "one-way") and leader is not None:
            if kind == "isolate-leader":
                links = cluster.isolate(leader.id)
            else:
                inbound = rng.random() < 0.5
                target = leader.id if rng.random() < 0.6 else rng.choice(live).id
                links = cluster.isolate(target, inbound=inbound, outbound=not inbound)
            cluster.at(until, lambda: cluster.heal(links))
        elif kind in ("crash", "crash-leader") and live:
            victim = leader if kind == "crash-leader" and leader is not None else rng.choice(live)
            cluster.crash(victim.id)
            if rng.random() < 0.8:
                cluster.at(until, lambda: self._restart(victim.id))
        elif kind == "crash-many" and live:
            victims = rng.sample([n.id for n in live], rng.randint(len(live) // 2, len(live)))
            for victim_id in victims:
                cluster.crash(victim_id)
            cluster.at(until, lambda: self._restart_all(victims))
        elif kind == "add" and self.added < 2:
            self.added += 1
            node_id = f"n{self.next_node}"
            self.next_node += 1
            cluster.add_node(node_id)
            self._retry(lambda: cluster.add_member(node_id, promote=rng.random() < 0.8))
        elif kind in ("remove", "remove-leader") and leader is not None:
            self._remove(kind == "remove-leader")
        elif kind == "transfer" and leader is not None:
            voters = sorted(leader.raft.config.voters - {leader.id})
            cluster.transfer(rng.choice(voters) if voters and rng.random() < 0.7 else None)

    def _restart_all(self, node_ids: list[str]) -> None:
        for node_id in node_ids:
            self._restart(node_id)

    def _restart(self, node_id: str) -> None:
        if node_id not in self.cluster.retired:
            self.cluster.restart(node_id)

    def _remove(self, leader_itself: bool) -> None:
        cluster, rng = self.cluster, self.rng
        leader = cluster.leader()
        if leader is None:
            return
        config = leader.raft.config
        if config.is_joint:
            return
        if leader_itself:
            target = leader.id
        else:
            candidates = sorted(config.learners) + sorted(config.voters - {leader.id})
            if not candidates:
                return
            target = rng.choice(candidates)
        if target in config.voters and len(config.voters) <= 3:
            return
        if self._attempt(lambda: cluster.remove_member(target)):
            retire = rng.random() < 0.5
            cluster.at(
                cluster.now + 4 * cluster.params.election_ticks,
                lambda: self._maybe_retire(target, retire),
            )

    def _maybe_retire(self, node_id: str, retire: bool) -> None:
        leader = self.cluster.leader()
        if (
            retire
            and leader is not None
            and leader.id != node_id
            and node_id not in leader.raft.config.members
            and leader.raft.role is Role.LEADER
        ):
            self.cluster.retire(node_id)

    def _attempt(self, call: Callable[[], object]) -> bool:
        result = call()
        return not isinstance(result, Refusal)

    def _retry(self, call: Callable[[], object], attempts: int = 6) -> None:
        result = call()
        retryable = (
            RefusalReason.LEADER_NOT_READY,
            RefusalReason.CONFIG_CHANGE_IN_PROGRESS,
            RefusalReason.NO_LEADER,
            RefusalReason.NOT_LEADER,
        )
        if isinstance(result, Refusal) and result.reason in retryable and attempts > 1:
            self.cluster.at(
                self.cluster.now + self.cluster.params.election_ticks // 2,
                lambda: self._retry(call, attempts - 1),
            )


def run_seed(seed: int, *, verbose: bool = False) -> SeedResult:
    """Run the scenario drawn from ``seed``.

    :raises ~replobj.sim.engine.SimulationFailure: (an ``AssertionError``) naming the seed
        and the command that replays it, if any safety or liveness check fails.
    """
    return ScheduledRun(seed, verbose=verbose).run()
