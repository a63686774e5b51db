"""Actions: what the core asks its driver (the runtime or a simulator) to do.

:meth:`RaftNode.take_actions` returns them in order. The driver must execute them in
that order and honour each one's obligation, stated in its docstring. The rule that
keeps Raft safe across crashes (paper Figure 2, etcd's ``Ready``): a
:class:`SaveHardState` is durable before any later :class:`Send` leaves the node.
Log appends need not be durable before sends; the driver reports their durability
with :meth:`RaftNode.handle_log_persisted`, and until then the node neither counts
them toward a quorum nor acknowledges them to the leader.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TypeAlias

from .messages import Message
from .status import ElectionStall
from .types import (
    Entry,
    HardState,
    LogIndex,
    NodeId,
    ProposalId,
    RefusalReason,
    Role,
    SnapshotMeta,
    Term,
)


@dataclass(frozen=True, slots=True)
class SaveHardState:
    """Persist term and vote. Must be durable before any :class:`Send` that follows it."""

    term: Term
    voted_for: NodeId | None
    catch_up_to: LogIndex = 0
    """See :attr:`HardState.catch_up_to`; store it with the term and vote."""

    @property
    def hard_state(self) -> HardState:
        """The hard state to store."""
        return HardState(self.term, self.voted_for, self.catch_up_to)


@dataclass(frozen=True, slots=True)
class AppendLog:
    """Write ``entries``, first deleting every stored entry at or after ``entries[0].index``.

    Need not be durable before later sends. When it is durable, call
    ``handle_log_persisted(entries[-1].index, entries[-1].term)``; reports must come
    in the order the appends were issued (a later report covers earlier ones).
    """

    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` to ``to``. May be dropped if the link is busy or down: Raft retransmits."""

    to: NodeId
    message: Message


class TimerKind(enum.Enum):
    """Which timer the driver must (re)arm."""

    ELECTION = "election"
    """A randomised election timeout, e.g. uniform in [T, 2T) (paper §5.2)."""
    HEARTBEAT = "heartbeat"
    """The leader's heartbeat interval, well below the election timeout."""


@dataclass(frozen=True, slots=True)
class ResetTimer:
    """Cancel the running timer and arm one of ``kind``; on expiry call ``handle_timeout()``."""

    kind: TimerKind


@dataclass(frozen=True, slots=True)
class ApplyEntries:
    """These entries are committed: apply them to the state machine in order.

    Consecutive, never repeated. ``NOOP`` and ``CONFIG`` entries advance the applied
    index but carry nothing for the application.
    """

    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class ReadReady:
    """Read ``request_id`` may be served once the applied index reaches ``read_index``."""

    request_id: int
    read_index: LogIndex


@dataclass(frozen=True, slots=True)
class ReadFailed:
    """Read ``request_id`` cannot be confirmed here (leadership lost or unknown); retry it."""

    request_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class ProposalForwarded:
    """The leader appended forwarded request ``request_id``: one proposal per payload.

    Wait for each index to be applied here; the entry's term tells whether it is ours.
    """

    request_id: int
    proposals: tuple[ProposalId, ...]


@dataclass(frozen=True, slots=True)
class ProposalFailed:
    """Forwarded request ``request_id`` was not appended (``reason``); nothing was proposed."""

    request_id: int
    reason: RefusalReason
    message: str


@dataclass(frozen=True, slots=True)
class SendSnapshotChunk:
    """Read up to ``max_bytes`` of the current snapshot (``meta``) from ``offset`` and send it.

    The driver builds :class:`~replobj.raft.messages.InstallSnapshot` with ``term``,
    ``sender``, ``seq`` given here, the bytes it read, and ``done`` true when the chunk
    reaches the end. If the stored snapshot no longer matches ``meta`` the action can
    be dropped: the core retries on its next heartbeat with the newer snapshot.
    """

    to: NodeId
    term: Term
    sender: NodeId
    meta: SnapshotMeta
    offset: int
    max_bytes: int
    seq: int


@dataclass(frozen=True, slots=True)
class WriteSnapshotChunk:
    """Stage ``data`` at ``offset`` of an incoming snapshot described by ``meta``.

    ``offset == 0`` starts a new staging area (discarding an older partial one).
    Staged data need not be durable; it must not replace the current snapshot.
    """

    meta: SnapshotMeta
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """Atomically make the staged snapshot ``meta`` the current one and restore the state machine.

    Log entries up to ``meta.last_index`` may be discarded; entries after it are kept
    only if ``keep_log`` is true (paper §7). When done (durably), call
    ``handle_snapshot_installed(meta)``.
    """

    meta: SnapshotMeta
    keep_log: bool


@dataclass(frozen=True, slots=True)
class CompactLog:
    """Entries up to and including ``upto`` are covered by a durable snapshot and may be deleted."""

    upto: LogIndex


@dataclass(frozen=True, slots=True)
class RoleChanged:
    """Informational: role, term or known leader changed (for status and logging)."""

    role: Role
    term: Term
    leader: NodeId | None


@dataclass(frozen=True, slots=True)
class ElectionStalled:
    """Informational: this node's election stalled because voters withhold their votes
    (``stall``), or a stall reported before is over (``None``). Log it: it says what an
    operator must do (:meth:`ElectionStall.describe`)."""

    stall: ElectionStall | None


Action: TypeAlias = (
    SaveHardState
    | AppendLog
    | Send
    | ResetTimer
    | ApplyEntries
    | ReadReady
    | ReadFailed
    | ProposalForwarded
    | ProposalFailed
    | SendSnapshotChunk
    | WriteSnapshotChunk
    | InstallSnapshot
    | CompactLog
    | RoleChanged
    | ElectionStalled
)
"""Every action the core can emit."""
