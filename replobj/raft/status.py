"""Read-only views of a node's state, for status tables, logs and tests."""

from __future__ import annotations

from dataclasses import dataclass

from .types import ClusterConfig, LogIndex, NodeId, Role, Term


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """The leader's view of one follower's replication."""

    match_index: LogIndex
    next_index: LogIndex
    state: str
    """``"probe"``, ``"replicate"`` or ``"snapshot"``."""
    inflight: int


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """A copy of a node's protocol state, for status tables and tests."""

    id: NodeId
    role: Role
    term: Term
    leader: NodeId | None
    commit_index: LogIndex
    applied_index: LogIndex
    last_index: LogIndex
    persisted_index: LogIndex
    snapshot_index: LogIndex
    config: ClusterConfig
    peers: dict[NodeId, PeerStatus]
