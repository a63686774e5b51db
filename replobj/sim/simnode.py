"""One simulated server: a Raft core plus its disk, state machine and bookkeeping."""

from __future__ import annotations

from replobj.raft import LogIndex, NodeId, RaftNode, RaftOptions, RestoredState, Term

from .machine import HashChainMachine
from .storage import SimStorage


class SimNode:
    """A server of the simulated cluster, across its incarnations (each restart is a new one).

    ``last_commit``/``last_applied``/``leader_term`` are what the checker saw last in the
    current incarnation; ``timer_at`` is the time of the one live timer event (-1: none).
    """

    def __init__(self, node_id: NodeId, initial: RestoredState, options: RaftOptions) -> None:
        self.id = node_id
        self.options = options
        self.storage = SimStorage(initial)
        self.machine = HashChainMachine()
        self.raft = RaftNode(node_id, initial, options)
        self.alive = True
        self.incarnation = 0
        self.last_commit: LogIndex = 0
        self.last_applied: LogIndex = 0
        self.leader_term: Term = 0
        self.timer_at = -1
        self.timer_deadline = 0
        self.fsync_tail = 0

    def crash(self) -> None:
        """Stop the server; the disk loses what was not durable."""
        self.alive = False
        self.incarnation += 1
        self.storage.crash()
        self.timer_at = -1

    def restart(self) -> None:
        """Start a new incarnation from durable state only."""
        self.incarnation += 1
        self.alive = True
        restored = self.storage.restored_state()
        self.machine = HashChainMachine.restore(self.storage.snapshot_data)
        self.raft = RaftNode(self.id, restored, self.options)
        self.last_commit = 0
        self.last_applied = self.machine.applied_index
        self.leader_term = 0
        self.timer_at = -1
        self.fsync_tail = 0
