"""The pure Raft core: no I/O, no clocks, no threads; inputs are calls, outputs are actions.

Modelled on raftbare/noraft and etcd-io/raft. This package imports only the
standard library (a test enforces it) so whole clusters can be simulated
deterministically.
"""

from __future__ import annotations

from .actions import (
    Action,
    AppendLog,
    ApplyEntries,
    CompactLog,
    ElectionStalled,
    InstallSnapshot,
    ProposalFailed,
    ProposalForwarded,
    ReadFailed,
    ReadReady,
    ResetTimer,
    RoleChanged,
    SaveHardState,
    Send,
    SendSnapshotChunk,
    TimerKind,
    WriteSnapshotChunk,
)
from .messages import MESSAGE_TYPES, Message
from .node import RaftNode
from .options import RaftOptions, RestoredState
from .status import ElectionStall, NodeStatus, PeerStatus
from .types import (
    ClusterConfig,
    Entry,
    EntryKind,
    HardState,
    LogIndex,
    NodeId,
    ProposalId,
    ProposalStatus,
    Refusal,
    RefusalReason,
    Role,
    SnapshotMeta,
    Term,
)

__all__ = [
    "MESSAGE_TYPES",
    "Action",
    "AppendLog",
    "ApplyEntries",
    "ClusterConfig",
    "CompactLog",
    "ElectionStall",
    "ElectionStalled",
    "Entry",
    "EntryKind",
    "HardState",
    "InstallSnapshot",
    "LogIndex",
    "Message",
    "NodeId",
    "NodeStatus",
    "PeerStatus",
    "ProposalFailed",
    "ProposalForwarded",
    "ProposalId",
    "ProposalStatus",
    "RaftNode",
    "RaftOptions",
    "ReadFailed",
    "ReadReady",
    "Refusal",
    "RefusalReason",
    "ResetTimer",
    "RestoredState",
    "Role",
    "RoleChanged",
    "SaveHardState",
    "Send",
    "SendSnapshotChunk",
    "SnapshotMeta",
    "Term",
    "TimerKind",
    "WriteSnapshotChunk",
]
