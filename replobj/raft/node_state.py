"""The fields of a :class:`~replobj.raft.node.RaftNode`, the queries over them, and its outputs.

Rule of this module: state and output, no protocol decision. Every field the protocol
parts (``node_*.py``) share is created in :meth:`NodeState.__init__`; every effect is an
action queued on ``_actions`` until :meth:`RaftNode.take_actions` (the common ones through
the helpers here). The methods one part calls on another are declared at the end, for the
type checker only: at run time :class:`~replobj.raft.node.RaftNode` inherits the real ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import actions as act
from .log import RaftLog
from .messages import AppendEntries, InstallSnapshot, Message, RequestVoteReply
from .options import RaftOptions, RestoredState
from .progress import Progress
from .reads import PendingRead, ReadTracker
from .status import ElectionStall, NodeStatus, PeerStatus
from .types import (
    ClusterConfig,
    Entry,
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


@dataclass(slots=True)
class _IncomingSnapshot:
    meta: SnapshotMeta
    next_offset: int


class NodeState:
    """What one Raft participant knows; the base of every part of :class:`RaftNode`.

    Not used alone: :class:`~replobj.raft.node.RaftNode` adds the protocol.
    """

    def __init__(
        self,
        node_id: NodeId,
        restored: RestoredState,
        options: RaftOptions | None = None,
        *,
        prepare_payload: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.id: NodeId = node_id
        self._prepare_payload = prepare_payload
        self.options = options or RaftOptions()
        self._log = RaftLog(restored.snapshot, restored.entries)
        self.term: Term = restored.hard_state.term
        self.voted_for: NodeId | None = restored.hard_state.voted_for
        self._catch_up_to: LogIndex = restored.hard_state.catch_up_to
        self.role = Role.FOLLOWER
        self.leader: NodeId | None = None
        self.commit_index: LogIndex = restored.snapshot.last_index
        self.applied_index: LogIndex = restored.snapshot.last_index
        self.persisted_index: LogIndex = self._log.last_index
        self._actions: list[act.Action] = []
        self._announced: tuple[Role, Term, NodeId | None] | None = None
        # follower state
        self._leader_alive = False
        self._verified_index: LogIndex = 0
        self._leader_seq = 0
        self._last_reply: tuple[Term, int, LogIndex] | None = None
        """(term, seq, match index) of the last successful AppendEntriesReply sent."""
        self._forwarded_reads: set[int] = set()
        self._incoming: _IncomingSnapshot | None = None
        self._installing: SnapshotMeta | None = None
        # candidate state
        self._votes: set[NodeId] = set()
        self._vote_replies: dict[NodeId, RequestVoteReply] = {}
        self._stall: ElectionStall | None = None
        self._announced_stall: ElectionStall | None = None
        # leader state
        self._progress: dict[NodeId, Progress] = {}
        self._reads = ReadTracker()
        self._seq = 0
        self._ticks = 0
        self._transfer_to: NodeId | None = None
        self._transfer_ticks = 0
        self._term_start: LogIndex = 0
        self._must_broadcast = False
        self._unsaved: list[Entry] = []
        self.ignored_messages = 0
        """Messages dropped because they came from ourselves or broke the protocol's shape."""
        self._reset_timer()
        self._announce()

    # ------------------------------------------------------------------ queries

    @property
    def last_index(self) -> LogIndex:
        """Index of the last entry in this node's log."""
        return self._log.last_index

    @property
    def last_term(self) -> Term:
        """Term of the last entry in this node's log."""
        return self._log.last_term

    @property
    def config(self) -> ClusterConfig:
        """The latest configuration in the log (in effect as soon as appended, thesis §4.1)."""
        return self._log.config

    @property
    def config_committed(self) -> bool:
        """Whether :attr:`config` is committed (no membership change is in flight here)."""
        return self._log.config_index <= self.commit_index

    @property
    def snapshot(self) -> SnapshotMeta:
        """Metadata of the snapshot the in-memory log follows."""
        return self._log.snapshot

    def term_at(self, index: LogIndex) -> Term | None:
        """Term of the entry at ``index``, or ``None`` if compacted away or beyond the log."""
        return self._log.term_at(index)

    def entries_between(self, lo: LogIndex, hi: LogIndex) -> list[Entry]:
        """Entries ``lo .. hi - 1`` still held in memory."""
        return self._log.between(lo, hi)

    def status(self) -> NodeStatus:
        """A copy of the protocol state (role, term, indexes, configuration, peers)."""
        peers = {
            peer: PeerStatus(p.match_index, p.next_index, p.state.value, len(p.inflight))
            for peer, p in self._progress.items()
        }
        return NodeStatus(
            id=self.id,
            role=self.role,
            term=self.term,
            leader=self.leader,
            commit_index=self.commit_index,
            applied_index=self.applied_index,
            last_index=self.last_index,
            persisted_index=self.persisted_index,
            snapshot_index=self._log.snapshot.last_index,
            config=self.config,
            peers=peers,
            stalled=self._stall,
        )

    def proposal_status(self, proposal: ProposalId) -> ProposalStatus:
        """Whether the entry proposed as ``proposal`` committed, lost, or is still pending.

        Only a committed index is final (Figure 8 shows an uncommitted entry of an old term
        can still win), so an overwritten but uncommitted index stays ``PENDING``.
        """
        if proposal.index > self.commit_index:
            return ProposalStatus.PENDING
        term = self._log.term_at(proposal.index)
        if term is None:
            return ProposalStatus.UNKNOWN
        return ProposalStatus.COMMITTED if term == proposal.term else ProposalStatus.REJECTED

    # ------------------------------------------------------------------ outputs

    def _refusal(self, reason: RefusalReason, message: str) -> Refusal:
        leader = self.leader if self.leader != self.id else None
        return Refusal(reason, message, leader)

    def _send(self, to: NodeId, message: Message) -> None:
        self._actions.append(act.Send(to, message))

    def _save_hard_state(self) -> None:
        self._actions.append(act.SaveHardState(self.term, self.voted_for, self._catch_up_to))

    def _vote_withheld(self) -> bool:
        """Whether this node must neither vote nor stand for election yet.

        A node started to join with an empty store (``RestoredState.joining()``; also how a
        member whose data directory was wiped is restarted) may have acknowledged entries
        and voted before, and forgotten it. It votes for nobody until a leader has told it
        how far the cluster got, and then until its durable log reaches that commit index
        (:attr:`HardState.catch_up_to`). Without this, it could elect a candidate missing an
        entry it had acknowledged, and so lose a committed entry. A founder with an empty
        log votes as usual: it cannot tell a wiped directory from a first start, and
        withholding there would stall legitimate elections.
        """
        if self.last_index == 0 and not self.config.members:
            return True
        return self.persisted_index < self._catch_up_to

    def _reset_timer(self) -> None:
        kind = act.TimerKind.HEARTBEAT if self.role is Role.LEADER else act.TimerKind.ELECTION
        self._actions.append(act.ResetTimer(kind))

    def _announce(self) -> None:
        state = (self.role, self.term, self.leader)
        if state != self._announced:
            self._announced = state
            self._actions.append(act.RoleChanged(*state))
        if self._stall != self._announced_stall:
            self._announced_stall = self._stall
            self._actions.append(act.ElectionStalled(self._stall))

    if TYPE_CHECKING:
        # What one part calls on another; RaftNode inherits the real methods.

        # node_elections.py
        def _become_follower(self, term: Term, leader: NodeId | None) -> None: ...
        def _maybe_send_timeout_now(self) -> None: ...

        # node_replication.py
        def _heard_from_leader(self, m: AppendEntries | InstallSnapshot) -> bool: ...
        def _peer_progress(self, sender: NodeId, seq: int) -> Progress | None: ...
        def _send_append(self, peer: NodeId, *, heartbeat: bool = False) -> None: ...
        def _after_peer_ack(self, peer: NodeId, progress: Progress) -> None: ...
        def _maybe_commit(self) -> None: ...
        def _append_own(self, entries: list[Entry]) -> None: ...
        def _flush_own_appends(self) -> None: ...

        # node_snapshots.py
        def _send_snapshot_chunk(self, peer: NodeId, progress: Progress) -> None: ...

        # node_membership.py
        def _promote(self, peer: NodeId) -> None: ...
        def _after_commit_config(self) -> None: ...
        def _on_config_changed(self) -> None: ...
        def _sync_progress(self) -> None: ...

        # node_reads.py
        def _confirm_reads(self) -> None: ...
        def _answer_read(self, read: PendingRead, index: LogIndex | None) -> None: ...
        def _fail_forwarded_reads(self, reason: str) -> None: ...

        # node_proposals.py
        def _refuse_proposal(self) -> Refusal | None: ...

        # node.py
        def propose_batch(self, payloads: Sequence[bytes]) -> list[ProposalId] | Refusal: ...
