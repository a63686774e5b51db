"""What :meth:`~replobj.node.Node.status` reports: :class:`NodeStatus` and :class:`PeerLag`."""

from __future__ import annotations

from dataclasses import dataclass

from .raft.status import ElectionStall
from .raft.types import NodeId


@dataclass(frozen=True, slots=True)
class PeerLag:
    """How far one member is behind the leader (known on the leader only)."""

    match_index: int
    lag: int
    state: str


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """What :meth:`Node.status` reports.

    ``role`` is ``"leader"``, ``"follower"``, ``"candidate"``, ``"learner"`` or, once this
    node was removed from the cluster, ``"removed"`` (and ``removed`` is ``True``).
    """

    id: NodeId
    role: str
    term: int
    leader: NodeId | None
    voters: tuple[NodeId, ...]
    learners: tuple[NodeId, ...]
    commit_index: int
    applied_index: int
    last_index: int
    snapshot_index: int
    peers: dict[NodeId, PeerLag]
    snapshot_error: str | None = None
    """Why the last snapshot failed (e.g. an object's state cannot be pickled), or ``None``;
    the node keeps its log and serves on, and tries again after ``snapshot_entries`` more."""
    removed: bool = False
    """Whether this node was removed from the cluster (it no longer receives the log; stop
    it, or add it back from a member)."""
    cluster_id: str = ""
    """The cluster's id (fixed by its first leader, replicated), ``""`` until known."""
    stalled: ElectionStall | None = None
    """Why no leader can be elected, seen from this member while it stands for election:
    the voters that withhold their votes (rejoined with an empty or incomplete log) and
    each survivor's last index; :meth:`ElectionStall.describe` says what to do. ``None``
    when no stall is known."""

    def __str__(self) -> str:
        """A short aligned block for a terminal or a log: ``print(node.status())``.

        One line per field; on the leader one line per other member with its match index,
        lag and replication state; the stall, the removal and a failed snapshot only when
        they apply. ``repr()`` stays the dataclass's, for tests and debugging.
        """
        rows = [
            ("member", self.id),
            ("role", self.role),
            ("term", str(self.term)),
            ("leader", self.leader if self.leader is not None else "(none known)"),
            ("cluster", self.cluster_id or "(not yet known)"),
            ("commit", str(self.commit_index)),
            ("applied", str(self.applied_index)),
            ("last index", str(self.last_index)),
            ("snapshot", str(self.snapshot_index)),
            ("voters", ", ".join(self.voters) or "(none)"),
            ("learners", ", ".join(self.learners) or "(none)"),
        ]
        width = max(len(str(peer)) for peer in self.peers) if self.peers else 0
        for peer, lag in sorted(self.peers.items()):
            rows.append(
                (
                    f"peer {peer:<{width}}",
                    f"match {lag.match_index}, lag {lag.lag} ({lag.state})",
                )
            )
        if self.removed:
            rows.append(("removed", "yes: it no longer receives the log; stop it or add it back"))
        if self.stalled is not None:
            rows.append(("stalled", self.stalled.describe()))
        if self.snapshot_error is not None:
            rows.append(("snapshot error", self.snapshot_error))
        label = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{label}}  {value}" for name, value in rows)
