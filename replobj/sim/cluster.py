"""Client and operator calls on a simulated cluster: proposals, reads, faults, membership."""

from __future__ import annotations

from collections.abc import Callable

from replobj.raft import (
    LogIndex,
    NodeId,
    ProposalId,
    ProposalStatus,
    Refusal,
    RefusalReason,
    RestoredState,
    Role,
)

from .checks import SafetyViolation
from .engine import PendingRead, Proposal, SimEngine
from .network import RELIABLE, split_links
from .simnode import SimNode


class SimCluster(SimEngine):
    """A simulated cluster with the calls a client, an operator and a fault injector make."""

    def live(self) -> list[SimNode]:
        """Running nodes, in name order."""
        return [n for _, n in sorted(self.nodes.items()) if n.alive]

    def leader(self) -> SimNode | None:
        """The running node that believes it leads with the highest term, if any."""
        best: SimNode | None = None
        for node in self.live():
            if node.raft.role is Role.LEADER and (best is None or node.raft.term > best.raft.term):
                best = node
        return best

    def request_read(self, node_id: NodeId) -> int | None:
        """Start a linearizable read on ``node_id``; returns its id, or None if refused."""
        node = self.nodes[node_id]
        if not node.alive:
            return None
        self._read_ids += 1
        rid = self._read_ids
        required = self.checker.max_commit
        refused = node.raft.read_index(rid)
        if refused is not None:
            self.drive(node)
            return None
        self.reads[rid] = PendingRead(node_id, required, self.now)
        self.drive(node)
        return rid

    def next_payload(self) -> bytes:
        """A payload unique within this run (``b"<seed>:<n>"``)."""
        self.stats.proposals += 1
        return f"{self.seed}:{self.stats.proposals}".encode()

    def propose(self, payloads: list[bytes]) -> list[ProposalId] | Refusal:
        """Propose ``payloads`` on the current leader (refused if there is none)."""
        leader = self.leader()
        if leader is None:
            return Refusal(RefusalReason.NO_LEADER, "no running leader")
        result = leader.raft.propose_batch(payloads)
        self.drive(leader)
        if isinstance(result, Refusal):
            return result
        for pid, payload in zip(result, payloads, strict=True):
            self.proposals.append(Proposal(leader.id, leader.incarnation, pid, payload))
        self.note(leader.id, "propose", f"{len(payloads)} at {result[0].index}@{result[0].term}")
        return result

    def add_node(self, node_id: NodeId) -> SimNode:
        """Start a fresh node that will be added to the cluster (empty configuration)."""
        node = SimNode(node_id, RestoredState.joining(), self.params.options)
        self._start(node)
        return node

    def add_member(self, node_id: NodeId, *, promote: bool = True) -> ProposalId | Refusal:
        """Ask the leader to add ``node_id`` (starting it first if it does not exist)."""
        if node_id not in self.nodes:
            self.add_node(node_id)
        result = self._on_leader(lambda n: n.raft.add_member(node_id, promote=promote), "add")
        assert result is not None
        return result

    def remove_member(self, node_id: NodeId) -> ProposalId | Refusal:
        """Ask the leader to remove ``node_id`` (voter, learner, or the leader itself)."""
        result = self._on_leader(lambda n: n.raft.remove_member(node_id), "remove")
        assert result is not None
        return result

    def transfer(self, to: NodeId | None = None) -> Refusal | None:
        """Ask the leader to hand leadership to ``to`` (or the best candidate)."""
        result = self._on_leader(lambda n: n.raft.transfer_leadership(to), "transfer")
        assert not isinstance(result, ProposalId)
        return result

    def _on_leader(
        self, call: Callable[[SimNode], ProposalId | Refusal | None], what: str
    ) -> ProposalId | Refusal | None:
        leader = self.leader()
        if leader is None:
            return Refusal(RefusalReason.NO_LEADER, "no running leader")
        result = call(leader)
        self.note(leader.id, what, result if result is not None else "accepted")
        self.drive(leader)
        return result

    def crash(self, node_id: NodeId) -> None:
        """Stop ``node_id``; writes not yet reported durable are lost."""
        node = self.nodes[node_id]
        if node.alive:
            node.crash()
            self.stats.crashes += 1
            self.note(node_id, "crash", f"durable log to {node.storage.durable.last_index}")

    def restart(self, node_id: NodeId) -> None:
        """Restart ``node_id`` from its durable state."""
        node = self.nodes[node_id]
        if node.alive:
            return
        node.restart()
        self.guarded(lambda: self._restarted(node))

    def _restarted(self, node: SimNode) -> None:
        self.checker.on_snapshot_restored(node, node.storage.snapshot_meta)
        self._start(node)

    def isolate(
        self, node_id: NodeId, *, inbound: bool = True, outbound: bool = True
    ) -> list[tuple[NodeId, NodeId]]:
        """Cut ``node_id`` off (one way if ``inbound`` or ``outbound`` is false)."""
        others = [n for n in sorted(self.nodes) if n != node_id]
        links: list[tuple[NodeId, NodeId]] = []
        if outbound:
            links += split_links([node_id], others, both_ways=False)
        if inbound:
            links += split_links(others, [node_id], both_ways=False)
        self.note(node_id, "isolate", f"inbound={inbound} outbound={outbound}")
        return self.network.cut(links)

    def partition(self, side: list[NodeId]) -> list[tuple[NodeId, NodeId]]:
        """Split ``side`` from every other node, both ways; returns the cut links."""
        others = [n for n in sorted(self.nodes) if n not in side]
        self.note("*", "split", f"{sorted(side)} | {others}")
        return self.network.cut(split_links(side, others))

    def heal(self, links: list[tuple[NodeId, NodeId]] | None = None) -> None:
        """Restore the given cut links, or every link if ``links`` is None."""
        if links is None:
            self.network.heal()
        else:
            self.network.restore(links)
        self.note("*", "heal", "all" if links is None else f"{len(links)} links")

    def calm(self) -> None:
        """End the fault phase: heal every link, stop loss and duplication, restart everyone."""
        self.heal()
        self.network.faults = RELIABLE
        for node_id in sorted(self.nodes):
            if node_id not in self.retired:
                self.restart(node_id)

    def retire(self, node_id: NodeId) -> None:
        """Stop a removed node for good (it is not restarted by :meth:`calm`)."""
        self.crash(node_id)
        self.retired.add(node_id)

    def wait_for_leader(self, within: int) -> SimNode | None:
        """Run until a leader has committed an entry of its own term (or ``within`` ticks pass)."""

        def ready() -> bool:
            leader = self.leader()
            return (
                leader is not None
                and leader.raft.term_at(leader.raft.commit_index) == leader.raft.term
            )

        self.run_until_true(ready, self.now + within, self.params.heartbeat_ticks)
        return self.leader() if ready() else None

    def applied_everywhere(self, index: LogIndex) -> bool:
        """Whether every member in the leader's configuration runs and applied ``index``."""
        leader = self.leader()
        if leader is None or self.checker.max_commit < index:
            return False
        for node_id in leader.raft.config.members:
            node = self.nodes.get(node_id)
            if node is None or not node.alive or node.machine.applied_index < index:
                return False
        return True

    def commit_fresh_proposal(self, deadline: int) -> LogIndex | None:
        """Liveness: propose until one payload is applied by every member, or give up.

        Returns the index of the committed payload, or None if ``deadline`` passed.
        """
        step = self.params.heartbeat_ticks
        payloads: list[bytes] = []
        proposed_to: tuple[NodeId, int] | None = None
        while True:
            for payload in payloads:
                index = self.checker.payload_index.get(payload)
                if index is not None and self.applied_everywhere(index):
                    return index
            if self.now >= deadline:
                return None
            leader = self.leader()
            if leader is not None and proposed_to != (leader.id, leader.raft.term):
                payload = self.next_payload()
                if not isinstance(self.propose([payload]), Refusal):
                    payloads.append(payload)
                    proposed_to = (leader.id, leader.raft.term)
            self.run_until(min(self.now + step, deadline))

    def settle(self, deadline: int) -> str | None:
        """Liveness after healing: configuration changes finish and reads are served.

        Runs until the leader's configuration is neither joint nor waiting to promote a
        learner, then until a read on every member succeeds. Returns what did not happen
        by ``deadline``, or None.
        """
        step = self.params.heartbeat_ticks

        def config_settled() -> bool:
            leader = self.leader()
            if leader is None:
                return False
            config = leader.raft.config
            return not config.is_joint and not config.auto_promote

        if not self.run_until_true(config_settled, deadline, step):
            return "the configuration is still joint or a learner is still awaiting promotion"
        pending: dict[NodeId, int | None] = {}

        def reads_served() -> bool:
            leader = self.leader()
            if leader is None:
                return False
            for node_id in sorted(leader.raft.config.members):
                rid = pending.get(node_id)
                if rid is None or self.answered.get(rid) is False:
                    pending[node_id] = self.request_read(node_id)
            return all(rid is not None and self.answered.get(rid) for rid in pending.values())

        if not self.run_until_true(reads_served, deadline, step):
            return f"linearizable reads were not served on every member: {pending}"
        return None

    def final_check(self) -> None:
        """End-of-run checks: leader completeness now, and every known proposal's fate."""
        leader = self.leader()
        if leader is not None:
            self.guarded(lambda: self.checker.check_leader_complete(leader))
        self.guarded(lambda: self.checker.check_logs_match(self.live()))
        for proposal in self.proposals:
            node = self.nodes[proposal.node]
            if not node.alive or node.incarnation != proposal.incarnation:
                continue
            status = node.raft.proposal_status(proposal.proposal)
            chosen = self.checker.chosen.get(proposal.proposal.index)
            if status is ProposalStatus.COMMITTED and (
                chosen is None or chosen.payload != proposal.payload
            ):
                raise self.failure(
                    str(
                        SafetyViolation(
                            "Proposal status",
                            f"{proposal.payload!r} reported COMMITTED but index "
                            f"{proposal.proposal.index} holds {chosen}",
                        )
                    )
                )
            if status is ProposalStatus.REJECTED and (
                chosen is not None and chosen.payload == proposal.payload
            ):
                raise self.failure(f"{proposal.payload!r} reported REJECTED but it was committed")

    def status_table(self) -> str:
        """A fixed-width table of every node's ``RaftNode.status()``."""
        header = (
            f"{'node':<5} {'up':<3} {'role':<13} {'term':>4} {'leader':<6} {'commit':>6} "
            f"{'applied':>7} {'last':>5} {'snap':>5}  config"
        )
        rows = [header]
        for node_id, node in sorted(self.nodes.items()):
            s = node.raft.status()
            voters = ",".join(sorted(s.config.voters))
            learners = ",".join(sorted(s.config.learners))
            config = voters + (f" +learners {learners}" if learners else "")
            rows.append(
                f"{node_id:<5} {'yes' if node.alive else 'no':<3} {s.role.value:<13} "
                f"{s.term:>4} {s.leader or '-':<6} {s.commit_index:>6} {s.applied_index:>7} "
                f"{s.last_index:>5} {s.snapshot_index:>5}  {config}"
            )
        return "\n".join(rows)
