"""Tunables of the Raft core and the state it restarts from."""

from __future__ import annotations

from dataclasses import dataclass, field

from .types import ClusterConfig, Entry, HardState, NodeId, SnapshotMeta


@dataclass(frozen=True, slots=True)
class RaftOptions:
    """Limits and switches of one Raft node.

    Byte limits count payload bytes plus a small per-entry overhead
    (:attr:`Entry.size`); a transport with a datagram limit (UDP) sets
    ``max_append_bytes`` and ``snapshot_chunk_bytes`` so every message fits.
    """

    max_append_entries: int = 512
    """Most entries in one AppendEntries message."""
    max_append_bytes: int = 1 << 20
    """Most entry bytes in one AppendEntries message (at least one entry is always sent)."""
    max_inflight_appends: int = 32
    """Most unacknowledged AppendEntries per follower while replicating (pipelining)."""
    max_inflight_bytes: int = 8 << 20
    """Most unacknowledged entry bytes per follower while replicating."""
    snapshot_chunk_bytes: int = 1 << 20
    """Size of one InstallSnapshot chunk."""
    election_ticks: int = 10
    """Heartbeat intervals per election timeout: a leader steps down (check-quorum) after
    this many heartbeats without hearing from a quorum, and abandons a leadership transfer
    that has not completed in that time."""
    pre_vote: bool = True
    """Run a pre-vote round before a real election (thesis §9.6)."""
    check_quorum: bool = True
    """Step down when a quorum has not been heard from within an election timeout."""
    promotion_lag: int = 64
    """A learner marked for promotion becomes a voter once this close (in entries) to the leader."""

    def __post_init__(self) -> None:
        for name in (
            "max_append_entries",
            "max_append_bytes",
            "max_inflight_appends",
            "max_inflight_bytes",
            "snapshot_chunk_bytes",
            "election_ticks",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"RaftOptions.{name} must be at least 1")
        if self.promotion_lag < 0:
            raise ValueError("RaftOptions.promotion_lag must not be negative")


@dataclass(frozen=True, slots=True)
class RestoredState:
    """What a node restarts from: its durable hard state, snapshot metadata and log.

    ``entries`` must be contiguous and start right after ``snapshot.last_index``.
    """

    hard_state: HardState = field(default_factory=HardState)
    snapshot: SnapshotMeta = field(default_factory=SnapshotMeta)
    entries: tuple[Entry, ...] = ()

    @classmethod
    def bootstrap(cls, voters: frozenset[NodeId] | set[NodeId]) -> RestoredState:
        """The state of a node in a brand-new cluster of ``voters`` (same on every member)."""
        return cls(snapshot=SnapshotMeta(config=ClusterConfig(voters=frozenset(voters))))

    @classmethod
    def joining(cls) -> RestoredState:
        """The state of a node that will be added to a running cluster: no configuration yet."""
        return cls()
