"""RaftNode: the whole protocol as a pure, deterministic state machine.

Rule of this module: every decision of the protocol is made here, from inputs
(method calls) alone; every effect leaves as an action in :meth:`RaftNode.take_actions`.
No clocks, randomness, threads or I/O: the driver owns those. Section numbers refer to
Ongaro & Ousterhout 2014 ("§") and Ongaro's 2014 thesis ("thesis §").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import actions as act
from . import membership
from .log import RaftLog
from .messages import (
    AppendEntries,
    AppendEntriesReply,
    InstallSnapshot,
    InstallSnapshotReply,
    Message,
    ProposeReply,
    ProposeRequest,
    ReadIndexReply,
    ReadIndexRequest,
    RequestVote,
    RequestVoteReply,
    TimeoutNow,
    is_malformed,
)
from .options import RaftOptions, RestoredState
from .progress import Progress, ReplicationState
from .reads import PendingRead, ReadTracker
from .status import NodeStatus, PeerStatus
from .types import (
    ClusterConfig,
    Entry,
    EntryKind,
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


class RaftNode:
    """One Raft participant. Feed it inputs, then drain :meth:`take_actions`.

    :param node_id: this member's name.
    :param restored: durable state to start from (:meth:`RestoredState.bootstrap` for a
        new cluster, :meth:`RestoredState.joining` for a node to be added later).
    :param options: limits and switches; defaults suit a LAN.
    :param prepare_payload: applied by a leader to every command payload it appends, e.g.
        to stamp the leader's clock (DESIGN: commands get a leader-assigned timestamp). It
        must be deterministic in the simulator; if it raises, the proposal is refused.
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
        self._forwarded_reads: set[int] = set()
        self._incoming: _IncomingSnapshot | None = None
        self._installing: SnapshotMeta | None = None
        # candidate state
        self._votes: set[NodeId] = set()
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

    # ------------------------------------------------------------------ driver API

    def take_actions(self) -> list[act.Action]:
        """Flush batched work (appends to followers, read rounds) and return pending actions.

        Execute them in order, honouring each action's documented obligation.
        """
        self._flush_own_appends()
        if self.role is Role.LEADER:
            if self._reads.start_round(self._seq + 1):
                self._seq += 1
                self._broadcast_heartbeat()
                self._confirm_reads()
            elif self._must_broadcast:
                for peer, progress in self._progress.items():
                    self._send_append(peer)
                    if progress.sent_commit < self.commit_index and (
                        progress.state is ReplicationState.REPLICATE
                    ):
                        self._send_entries(peer, progress, [])
            self._must_broadcast = False
        self._announce()
        actions, self._actions = self._actions, []
        return actions

    def propose(self, payload: bytes) -> ProposalId | Refusal:
        """Append a command entry (leader only); it is sent at the next :meth:`take_actions`."""
        result = self.propose_batch((payload,))
        if isinstance(result, Refusal):
            return result
        return result[0]

    def propose_batch(self, payloads: Sequence[bytes]) -> list[ProposalId] | Refusal:
        """Append several command entries at once (one log write, one message per follower)."""
        refusal = self._refuse_proposal()
        if refusal is not None:
            return refusal
        if not payloads:
            return []
        prepared = [bytes(p) for p in payloads]
        if self._prepare_payload is not None:
            try:
                prepared = [self._prepare_payload(p) for p in prepared]
            except Exception as exc:
                return self._refusal(
                    RefusalReason.INVALID_ARGUMENT, f"payload rejected by the driver: {exc}"
                )
        entries = [
            Entry(self.term, self.last_index + 1 + i, EntryKind.COMMAND, p)
            for i, p in enumerate(prepared)
        ]
        self._append_own(entries)
        return [ProposalId(e.term, e.index) for e in entries]

    def forward_proposal(self, request_id: int, payloads: Sequence[bytes]) -> Refusal | None:
        """Propose ``payloads`` through the leader, from any member.

        On the leader this is :meth:`propose_batch`; elsewhere the payloads travel to the
        leader. Either way the answer is a ``ProposalForwarded`` or ``ProposalFailed``
        action. A lost request or reply yields no answer: the driver needs a timeout (and
        commands need deduplication, since a retry may then apply twice).
        """
        if self.role is Role.LEADER:
            self._propose_for(self.id, request_id, tuple(payloads))
            return None
        if self.leader is None or self.role is not Role.FOLLOWER:
            return self._refusal(RefusalReason.NO_LEADER, "no leader is known; retry shortly")
        self._send(self.leader, ProposeRequest(self.term, self.id, request_id, tuple(payloads)))
        return None

    def add_member(self, node: NodeId, *, promote: bool = True) -> ProposalId | Refusal:
        """Add ``node`` as a learner; with ``promote`` it becomes a voter once caught up."""
        return self._change_config(membership.adding(self.config, node, promote=promote))

    def remove_member(self, node: NodeId) -> ProposalId | Refusal:
        """Remove ``node`` (voters through joint consensus, thesis §4.3; learners directly)."""
        return self._change_config(membership.removing(self.config, node))

    def read_index(self, request_id: int) -> Refusal | None:
        """Start linearizable read ``request_id`` (thesis §6.4).

        The answer comes later as ``ReadReady`` or ``ReadFailed``. On a follower the
        request is forwarded to the leader; if that message is lost no answer comes, so the
        driver needs a timeout.
        """
        if self.role is Role.LEADER:
            self._reads.add(self.id, request_id, self._read_commit())
            self._confirm_reads()
            return None
        if self.leader is None or self.role is not Role.FOLLOWER:
            return self._refusal(RefusalReason.NO_LEADER, "no leader is known; retry shortly")
        self._forwarded_reads.add(request_id)
        self._send(self.leader, ReadIndexRequest(self.term, self.id, request_id))
        return None

    def transfer_leadership(self, to: NodeId | None = None) -> Refusal | None:
        """Hand leadership to ``to`` (or the most caught-up voter) via TimeoutNow (thesis §3.10)."""
        if self.role is not Role.LEADER:
            return self._refusal(
                RefusalReason.NOT_LEADER, "only the leader can transfer leadership"
            )
        candidates = [v for v in self.config.voters if v != self.id]
        if to is None:
            if not candidates:
                return self._refusal(RefusalReason.INVALID_ARGUMENT, "there is no other voter")
            to = max(sorted(candidates), key=lambda v: self._progress[v].match_index)
        elif to not in candidates:
            return self._refusal(
                RefusalReason.INVALID_ARGUMENT, f"{to!r} is not another voter of the cluster"
            )
        self._transfer_to = to
        self._transfer_ticks = 0
        self._maybe_send_timeout_now()
        return None

    def handle_timeout(self) -> None:
        """The timer last armed by ``ResetTimer`` fired."""
        if self.role is Role.LEADER:
            self._tick_leader()
            return
        self._leader_alive = False
        if not self.config.is_voter(self.id):
            self._reset_timer()
            return
        if self.options.pre_vote:
            self._start_pre_vote()
        else:
            self._campaign(transfer=False)

    def handle_log_persisted(self, index: LogIndex, term: Term) -> None:
        """Entries up to ``index`` (whose term is ``term``) are durable."""
        if self._log.term_at(index) != term or index <= self.persisted_index:
            return
        old_ack = self._follower_ack()
        self.persisted_index = min(index, self.last_index)
        if self.role is Role.LEADER:
            self._maybe_commit()
        elif self.leader is not None and self._follower_ack() > old_ack:
            self._reply_append(True)

    def snapshot_meta_for(self, index: LogIndex) -> SnapshotMeta:
        """Metadata for a snapshot of the state machine after applying ``index``.

        :raises ValueError: unless ``snapshot.last_index <= index <= applied_index``.
        """
        if not self._log.snapshot.last_index <= index <= self.applied_index:
            raise ValueError(
                f"can only snapshot applied, uncompacted indexes "
                f"({self._log.snapshot.last_index}..{self.applied_index}), not {index}"
            )
        term = self._log.term_at(index)
        assert term is not None
        return SnapshotMeta(index, term, self._log.config_at(index))

    def handle_snapshot_taken(self, meta: SnapshotMeta) -> None:
        """The driver stored a snapshot durably: compact the log up to it."""
        if meta.last_index <= self._log.snapshot.last_index or meta.last_index > self.applied_index:
            return
        if meta != self.snapshot_meta_for(meta.last_index):
            self.ignored_messages += 1  # the driver's snapshot does not describe our log
            return
        self._flush_own_appends()
        self._log.compact(meta)
        self._actions.append(act.CompactLog(meta.last_index))

    def handle_snapshot_installed(self, meta: SnapshotMeta) -> None:
        """The driver installed snapshot ``meta`` (see the ``InstallSnapshot`` action)."""
        if self._installing != meta:
            return
        self._installing = None
        self._incoming = None
        keep = self._log.term_at(meta.last_index) == meta.last_term
        self._log.install(meta, keep)
        self.commit_index = max(self.commit_index, meta.last_index)
        self.applied_index = max(self.applied_index, meta.last_index)
        self.persisted_index = max(min(self.persisted_index, self.last_index), meta.last_index)
        self._verified_index = max(self._verified_index, meta.last_index)
        self._on_config_changed()
        if self.leader is not None and self.role is Role.FOLLOWER:
            reply = InstallSnapshotReply(
                self.term, self.id, meta.last_index, 0, True, self._leader_seq
            )
            self._send(self.leader, reply)
        self._apply_committed()

    def handle_message(self, message: Message) -> None:
        """Process one message from a peer. Malformed or stale messages are ignored."""
        if message.sender == self.id or is_malformed(message):
            self.ignored_messages += 1
            return
        if isinstance(message, RequestVote):
            self._on_request_vote(message)
            return
        if message.term > self.term:
            leader_msg = isinstance(message, AppendEntries | InstallSnapshot | TimeoutNow)
            if isinstance(message, RequestVoteReply) and message.pre_vote and message.granted:
                pass
            else:
                self._become_follower(message.term, message.sender if leader_msg else None)
        if isinstance(message, RequestVoteReply):
            self._on_vote_reply(message)
        elif message.term < self.term:
            self._on_stale(message)
        elif isinstance(message, AppendEntries):
            self._on_append(message)
        elif isinstance(message, AppendEntriesReply):
            self._on_append_reply(message)
        elif isinstance(message, InstallSnapshot):
            self._on_install_snapshot(message)
        elif isinstance(message, InstallSnapshotReply):
            self._on_snapshot_reply(message)
        elif isinstance(message, TimeoutNow):
            if self.config.is_voter(self.id) and self.role is not Role.LEADER:
                self._campaign(transfer=True)
        elif isinstance(message, ReadIndexRequest):
            self._on_read_request(message)
        elif isinstance(message, ReadIndexReply):
            self._on_read_reply(message)
        elif isinstance(message, ProposeRequest):
            self._on_propose_request(message)
        else:
            self._on_propose_reply(message)

    # ------------------------------------------------------------------ elections (§5.2)

    def _start_pre_vote(self) -> None:
        """Ask whether an election could be won before disturbing anyone (thesis §9.6)."""
        self.role = Role.PRE_CANDIDATE
        self.leader = None
        self._votes = {self.id}
        self._reset_timer()
        if self.config.has_quorum(self._votes):
            self._campaign(transfer=False)
            return
        request = RequestVote(
            self.term + 1, self.id, self.last_index, self.last_term, pre_vote=True
        )
        for voter in sorted(self.config.all_voters - {self.id}):
            self._send(voter, request)

    def _campaign(self, *, transfer: bool) -> None:
        """Start an election for the next term, voting for ourselves (§5.2)."""
        self._step_down_cleanup()
        self.role = Role.CANDIDATE
        self.term += 1
        self.voted_for = self.id
        self.leader = None
        self._leader_alive = False
        self._save_hard_state()
        self._votes = {self.id}
        self._reset_timer()
        if self.config.has_quorum(self._votes):
            self._become_leader()
            return
        request = RequestVote(
            self.term, self.id, self.last_index, self.last_term, transfer=transfer
        )
        for voter in sorted(self.config.all_voters - {self.id}):
            self._send(voter, request)

    def _on_request_vote(self, m: RequestVote) -> None:
        """Grant or deny a (pre-)vote (§5.2, §5.4.1; thesis §4.2.3 and §9.6)."""
        up_to_date = self._log.is_up_to_date(m.last_log_index, m.last_log_term)
        if m.pre_vote:
            granted = m.term > self.term and up_to_date and not self._leader_alive
            if self.role is Role.LEADER:
                granted = False
            reply_term = m.term if granted else self.term
            self._send(m.sender, RequestVoteReply(reply_term, self.id, granted, pre_vote=True))
            return
        if m.term > self.term:
            sticky = self._leader_alive or self.role is Role.LEADER
            if sticky and not m.transfer:
                return
            self._become_follower(m.term, None)
        granted = m.term == self.term and self.voted_for in (None, m.sender) and up_to_date
        if granted:
            self.voted_for = m.sender
            self._save_hard_state()
            self._reset_timer()
        self._send(m.sender, RequestVoteReply(self.term, self.id, granted))

    def _on_vote_reply(self, m: RequestVoteReply) -> None:
        if m.pre_vote:
            if self.role is Role.PRE_CANDIDATE and m.granted and m.term == self.term + 1:
                self._votes.add(m.sender)
                if self.config.has_quorum(self._votes):
                    self._campaign(transfer=False)
            return
        if self.role is Role.CANDIDATE and m.term == self.term and m.granted:
            self._votes.add(m.sender)
            if self.config.has_quorum(self._votes):
                self._become_leader()

    def _become_follower(self, term: Term, leader: NodeId | None) -> None:
        if leader != self.leader or term > self.term:
            self._verified_index = 0
            self._leader_seq = 0
            self._fail_forwarded_reads("the leader changed")
        if term > self.term:
            self.term = term
            self.voted_for = None
            self._save_hard_state()
        if self.role is Role.LEADER:
            self._step_down_cleanup()
        self.role = Role.FOLLOWER
        self.leader = leader
        self._reset_timer()

    def _become_leader(self) -> None:
        """Won the election (§5.2): take over replication and append a no-op (§8)."""
        self.role = Role.LEADER
        self.leader = self.id
        self._leader_alive = True
        self._fail_forwarded_reads("this node became leader")
        self._progress = {}
        self._sync_progress()
        self._ticks = 0
        self._transfer_to = None
        self._reset_timer()
        self._term_start = self.last_index + 1
        self._append_own([Entry(self.term, self.last_index + 1, EntryKind.NOOP)])

    def _step_down_cleanup(self) -> None:
        """Leave leadership: fail reads that can no longer be confirmed."""
        if self.role is not Role.LEADER:
            return
        self._flush_own_appends()
        for read in self._reads.drain():
            self._answer_read(read, None)
        self._progress = {}
        self._transfer_to = None
        self._must_broadcast = False
        self._leader_alive = False

    # ------------------------------------------------------------------ replication (§5.3)

    def _heard_from_leader(self, m: AppendEntries | InstallSnapshot) -> bool:
        """Follow ``m.sender`` (same term) and note it is alive; False while installing."""
        if self.role is not Role.FOLLOWER or self.leader != m.sender:
            self._become_follower(m.term, m.sender)
        self._leader_alive = True
        self._leader_seq = max(self._leader_seq, m.seq)
        self._reset_timer()
        return self._installing is None

    def _on_append(self, m: AppendEntries) -> None:
        if not self._heard_from_leader(m):
            return
        prev_index, prev_term, entries = m.prev_index, m.prev_term, m.entries
        floor = max(self.commit_index, self._log.snapshot.last_index)
        if prev_index < floor:
            # Everything up to our commit index matches the leader's log already.
            entries = tuple(e for e in entries if e.index > floor)
            prev_index = floor
            prev_term = self._log.term_at(floor) or 0
        elif self._log.term_at(prev_index) != prev_term:
            self._reject_append(m.prev_index, prev_index, m.prev_term)
            return
        self._store_entries(entries)
        last_new = entries[-1].index if entries else prev_index
        self._verified_index = max(self._verified_index, last_new)
        self._advance_follower_commit(m.leader_commit)
        self._reply_append(True)

    def _store_entries(self, entries: Sequence[Entry]) -> None:
        """Append what is new; truncate only on a real conflict (§5.3, never on stale input)."""
        for position, entry in enumerate(entries):
            existing = self._log.term_at(entry.index)
            if existing == entry.term:
                continue
            new = list(entries[position:])
            if existing is not None:
                self.persisted_index = min(self.persisted_index, entry.index - 1)
            old_config = self.config
            self._log.append(new)
            self._actions.append(act.AppendLog(tuple(new)))
            if self.config != old_config:
                self._on_config_changed()
            return

    def _reject_append(self, reject_index: LogIndex, prev_index: LogIndex, prev_term: Term) -> None:
        hint = self._log.find_conflict_by_term(min(prev_index, self.last_index), prev_term)
        reply = AppendEntriesReply(
            self.term,
            self.id,
            False,
            reject_index=reject_index,
            hint_index=hint,
            hint_term=self._log.term_at(hint) or 0,
            seq=self._leader_seq,
        )
        assert self.leader is not None
        self._send(self.leader, reply)

    def _follower_ack(self) -> LogIndex:
        return min(self.persisted_index, self._verified_index)

    def _reply_append(self, success: bool) -> None:
        assert self.leader is not None
        reply = AppendEntriesReply(
            self.term, self.id, success, match_index=self._follower_ack(), seq=self._leader_seq
        )
        self._send(self.leader, reply)

    def _advance_follower_commit(self, leader_commit: LogIndex) -> None:
        commit = min(leader_commit, self._verified_index)
        if commit > self.commit_index:
            self.commit_index = commit
            self._apply_committed()

    def _on_append_reply(self, m: AppendEntriesReply) -> None:
        if m.success and m.match_index > self.last_index:
            self.ignored_messages += 1  # acknowledges entries we never had
            return
        progress = self._peer_progress(m.sender, m.seq)
        if progress is None:
            return
        if m.success:
            if progress.update_match(m.match_index):
                self._maybe_commit()
            if progress.state is ReplicationState.PROBE:
                progress.become_replicate()
            self._after_peer_ack(m.sender, progress)
        elif progress.state is ReplicationState.REPLICATE:
            if m.reject_index > progress.match_index:
                self._backtrack(progress, m)
        elif progress.state is ReplicationState.PROBE and (
            m.reject_index == progress.next_index - 1
        ):
            self._backtrack(progress, m)
        self._confirm_reads()
        if self.role is Role.LEADER and m.sender in self._progress:
            self._send_append(m.sender)

    def _backtrack(self, progress: Progress, m: AppendEntriesReply) -> None:
        """Skip a whole conflicting term per round trip (§5.3, fast backtracking)."""
        index = self._log.find_conflict_by_term(m.hint_index, m.hint_term)
        if m.hint_index < self._log.snapshot.last_index:
            index = m.hint_index
        progress.become_probe(min(m.reject_index, index + 1))

    def _peer_progress(self, sender: NodeId, seq: int) -> Progress | None:
        if self.role is not Role.LEADER:
            return None
        progress = self._progress.get(sender)
        if progress is None:
            return None
        progress.recent_active = True
        progress.acked_seq = max(progress.acked_seq, seq)
        return progress

    def _after_peer_ack(self, peer: NodeId, progress: Progress) -> None:
        if peer == self._transfer_to:
            self._maybe_send_timeout_now()
        config = self.config
        if peer in config.auto_promote and (
            progress.match_index + self.options.promotion_lag >= self.last_index
        ):
            self._promote(peer)

    def _send_append(self, peer: NodeId, *, heartbeat: bool = False) -> None:
        """Send what ``peer`` is missing, within the pipeline limits (§5.3).

        A heartbeat always sends something: an empty AppendEntries whose ``prev_index`` is
        the last index sent, so a lost message is noticed at once, or the pending snapshot
        chunk again.
        """
        progress = self._progress[peer]
        if progress.state is ReplicationState.SNAPSHOT:
            if heartbeat:
                self._send_snapshot_chunk(peer, progress)
            return
        if self._log.term_at(progress.next_index - 1) is None:
            progress.become_snapshot(self._log.snapshot)
            self._send_snapshot_chunk(peer, progress)
            return
        opts = self.options
        sent = False
        while not progress.window_full(opts.max_inflight_appends, opts.max_inflight_bytes):
            entries = self._batch_from(progress.next_index)
            if not entries and (sent or not heartbeat):
                return
            if not self._send_entries(peer, progress, entries):
                return
            sent = True
            if progress.state is ReplicationState.PROBE:
                return
        if heartbeat and not sent:
            self._send_entries(peer, progress, [])

    def _send_entries(self, peer: NodeId, progress: Progress, entries: list[Entry]) -> bool:
        """One AppendEntries from ``progress.next_index``; False if a snapshot is needed."""
        prev_index = progress.next_index - 1
        prev_term = self._log.term_at(prev_index)
        if prev_term is None:
            progress.become_snapshot(self._log.snapshot)
            self._send_snapshot_chunk(peer, progress)
            return False
        message = AppendEntries(
            self.term, self.id, prev_index, prev_term, tuple(entries), self.commit_index, self._seq
        )
        self._send(peer, message)
        progress.sent_commit = self.commit_index
        if entries:
            progress.record_sent(entries[-1].index, sum(e.size for e in entries))
        elif progress.state is ReplicationState.PROBE:
            progress.probe_sent = True
        return True

    def _batch_from(self, start: LogIndex) -> list[Entry]:
        opts = self.options
        candidates = self._log.between(start, start + opts.max_append_entries)
        batch: list[Entry] = []
        size = 0
        for entry in candidates:
            if batch and size + entry.size > opts.max_append_bytes:
                break
            batch.append(entry)
            size += entry.size
        return batch

    def _broadcast_heartbeat(self) -> None:
        for peer in self._progress:
            progress = self._progress[peer]
            if progress.state is ReplicationState.PROBE:
                progress.probe_sent = False
            self._send_append(peer, heartbeat=True)

    def _tick_leader(self) -> None:
        """Heartbeat interval elapsed: check quorum, time out transfers, send heartbeats."""
        self._reset_timer()
        self._ticks += 1
        if self._transfer_to is not None:
            self._transfer_ticks += 1
            if self._transfer_ticks >= self.options.election_ticks:
                self._transfer_to = None
        if self.options.check_quorum and self._ticks % self.options.election_ticks == 0:
            active = {self.id} | {p for p, pr in self._progress.items() if pr.recent_active}
            for progress in self._progress.values():
                progress.recent_active = False
            if not self.config.has_quorum(active):
                self._become_follower(self.term, None)
                return
        self._seq += 1
        self._reads.start_round(self._seq)
        self._broadcast_heartbeat()
        self._confirm_reads()

    def _maybe_commit(self) -> None:
        """Advance the commit index to what a quorum holds, for entries of this term (§5.4.2)."""
        if self.role is not Role.LEADER:
            return
        match = {peer: p.match_index for peer, p in self._progress.items()}
        match[self.id] = self.persisted_index
        index = self.config.quorum_index(match)
        if index <= self.commit_index or self._log.term_at(index) != self.term:
            return
        first_commit_in_term = self.commit_index < self._term_start <= index
        self.commit_index = index
        self._must_broadcast = True
        if first_commit_in_term:
            self._reads.term_committed(self.commit_index)
        self._apply_committed()
        self._after_commit_config()
        self._confirm_reads()

    def _apply_committed(self) -> None:
        if self.commit_index <= self.applied_index:
            return
        entries = self._log.between(self.applied_index + 1, self.commit_index + 1)
        self.applied_index = self.commit_index
        self._actions.append(act.ApplyEntries(tuple(entries)))

    def _append_own(self, entries: list[Entry]) -> None:
        """Append the leader's own entries; the ``AppendLog`` is batched until the next drain."""
        old_config = self.config
        self._log.append(entries)
        self._unsaved.extend(entries)
        self._must_broadcast = True
        if self.config != old_config:
            self._on_config_changed()

    def _flush_own_appends(self) -> None:
        if self._unsaved:
            self._actions.append(act.AppendLog(tuple(self._unsaved)))
            self._unsaved = []

    # ------------------------------------------------------------------ snapshots (§7)

    def _send_snapshot_chunk(self, peer: NodeId, progress: Progress) -> None:
        if progress.snapshot != self._log.snapshot:
            progress.become_snapshot(self._log.snapshot)
        assert progress.snapshot is not None
        self._actions.append(
            act.SendSnapshotChunk(
                peer,
                self.term,
                self.id,
                progress.snapshot,
                progress.snapshot_offset,
                self.options.snapshot_chunk_bytes,
                self._seq,
            )
        )

    def _on_install_snapshot(self, m: InstallSnapshot) -> None:
        if not self._heard_from_leader(m):
            return
        meta = m.meta
        if meta.last_index <= self.commit_index:
            reply = InstallSnapshotReply(
                self.term, self.id, meta.last_index, 0, True, self._leader_seq
            )
            self._send(m.sender, reply)
            return
        incoming = self._incoming
        if m.offset == 0:
            incoming = self._incoming = _IncomingSnapshot(meta, 0)
        if incoming is None or incoming.meta != meta or m.offset != incoming.next_offset:
            expected = incoming.next_offset if incoming and incoming.meta == meta else 0
            reply = InstallSnapshotReply(
                self.term, self.id, meta.last_index, expected, False, self._leader_seq
            )
            self._send(m.sender, reply)
            return
        self._actions.append(act.WriteSnapshotChunk(meta, m.offset, m.data))
        incoming.next_offset += len(m.data)
        if m.done:
            self._installing = meta
            keep = self._log.term_at(meta.last_index) == meta.last_term
            self._actions.append(act.InstallSnapshot(meta, keep))
            return
        reply = InstallSnapshotReply(
            self.term, self.id, meta.last_index, incoming.next_offset, False, self._leader_seq
        )
        self._send(m.sender, reply)

    def _on_snapshot_reply(self, m: InstallSnapshotReply) -> None:
        if m.last_index > self.last_index:
            self.ignored_messages += 1  # a snapshot we never had
            return
        progress = self._peer_progress(m.sender, m.seq)
        if progress is None:
            return
        self._confirm_reads()
        if progress.state is not ReplicationState.SNAPSHOT or progress.snapshot is None:
            if m.done and progress.update_match(m.last_index):
                self._maybe_commit()
            return
        if m.last_index != progress.snapshot.last_index:
            return
        if m.done:
            progress.update_match(m.last_index)
            progress.become_probe(m.last_index + 1)
            self._maybe_commit()
            if self.role is Role.LEADER:
                self._send_append(m.sender)
            return
        progress.snapshot_offset = m.next_offset
        self._send_snapshot_chunk(m.sender, progress)

    # ------------------------------------------------------------------ membership (thesis §4)

    def _refuse_config_change(self) -> Refusal | None:
        refusal = self._refuse_proposal()
        if refusal is not None:
            return refusal
        if self.commit_index < self._term_start:
            return self._refusal(
                RefusalReason.LEADER_NOT_READY,
                "the new leader has not committed an entry of its term yet; retry shortly",
            )
        if self.config.is_joint or self._log.config_index > self.commit_index:
            return self._refusal(
                RefusalReason.CONFIG_CHANGE_IN_PROGRESS,
                "a membership change is still in progress; retry once it has committed",
            )
        return None

    def _change_config(self, new: ClusterConfig | str) -> ProposalId | Refusal:
        refusal = self._refuse_config_change()
        if refusal is not None:
            return refusal
        if isinstance(new, str):
            return self._refusal(RefusalReason.INVALID_CONFIG_CHANGE, new)
        return self._append_config(new)

    def _append_config(self, config: ClusterConfig) -> ProposalId:
        entry = Entry(self.term, self.last_index + 1, EntryKind.CONFIG, config.encode())
        self._append_own([entry])
        return ProposalId(entry.term, entry.index)

    def _promote(self, peer: NodeId) -> None:
        if self._refuse_config_change() is not None:
            return
        self._append_config(membership.promoting(self.config, peer))

    def _after_commit_config(self) -> None:
        """Finish joint consensus, and let a removed leader hand over (thesis §4.2.2, §4.3)."""
        config = self.config
        if self._log.config_index > self.commit_index:
            return
        self._prune_progress()
        if config.is_joint:
            self._append_config(membership.leaving_joint(config))
            return
        if self.id not in config.voters:
            others = [v for v in config.voters if v in self._progress]
            if others:
                target = max(sorted(others), key=lambda v: self._progress[v].match_index)
                for peer in self._progress:
                    self._send_append(peer, heartbeat=True)
                self._send(target, TimeoutNow(self.term, self.id))
            self._become_follower(self.term, None)

    def _on_config_changed(self) -> None:
        if self.role is Role.LEADER:
            self._sync_progress()
        elif self.role is not Role.FOLLOWER and not self.config.is_voter(self.id):
            self._become_follower(self.term, None)

    def _sync_progress(self) -> None:
        """Track every member; a removed peer is kept until the change commits (see below)."""
        members = self.config.members - {self.id}
        if self.config_committed:
            self._prune_progress()
        for peer in sorted(members):
            if peer not in self._progress:
                self._progress[peer] = Progress(next_index=self.last_index + 1)
        if self._transfer_to is not None and self._transfer_to not in self._progress:
            self._transfer_to = None

    def _prune_progress(self) -> None:
        """Stop replicating to peers a committed configuration removed.

        Each gets one last AppendEntries first, so it usually learns of the configuration
        that removed it and stops campaigning (it is no longer a voter there).
        """
        members = self.config.members
        for peer in [p for p in self._progress if p not in members]:
            self._send_append(peer, heartbeat=True)
            del self._progress[peer]

    # ------------------------------------------------------------------ reads (thesis §6.4)

    def _read_commit(self) -> LogIndex | None:
        return self.commit_index if self.commit_index >= self._term_start else None

    def _confirm_reads(self) -> None:
        if self.role is not Role.LEADER or not self._reads.confirming:
            return
        acked = {peer: p.acked_seq for peer, p in self._progress.items()}
        acked[self.id] = self._seq
        confirmed = self.config.quorum_index(acked)
        for read in self._reads.pop_confirmed(confirmed):
            self._answer_read(read, read.read_index)

    def _answer_read(self, read: PendingRead, index: LogIndex | None) -> None:
        if read.origin == self.id:
            if index is None:
                self._actions.append(act.ReadFailed(read.request_id, "leadership was lost"))
            else:
                self._actions.append(act.ReadReady(read.request_id, index))
            return
        ok = index is not None
        reply = ReadIndexReply(self.term, self.id, read.request_id, index or 0, ok)
        self._send(read.origin, reply)

    def _on_read_request(self, m: ReadIndexRequest) -> None:
        if self.role is not Role.LEADER:
            self._send(m.sender, ReadIndexReply(self.term, self.id, m.request_id, 0, False))
            return
        self._reads.add(m.sender, m.request_id, self._read_commit())
        self._confirm_reads()

    def _on_read_reply(self, m: ReadIndexReply) -> None:
        if m.request_id not in self._forwarded_reads:
            return
        self._forwarded_reads.discard(m.request_id)
        if m.ok:
            self._actions.append(act.ReadReady(m.request_id, m.read_index))
        else:
            self._actions.append(act.ReadFailed(m.request_id, "the leader could not confirm it"))

    def _fail_forwarded_reads(self, reason: str) -> None:
        for request_id in sorted(self._forwarded_reads):
            self._actions.append(act.ReadFailed(request_id, reason))
        self._forwarded_reads.clear()

    # ------------------------------------------------------------------ forwarded proposals

    def _propose_for(self, origin: NodeId, request_id: int, payloads: tuple[bytes, ...]) -> None:
        result = self.propose_batch(payloads)
        if origin == self.id:
            if isinstance(result, Refusal):
                self._actions.append(act.ProposalFailed(request_id, result.reason, result.message))
            else:
                self._actions.append(act.ProposalForwarded(request_id, tuple(result)))
            return
        if isinstance(result, Refusal):
            reply = ProposeReply(self.term, self.id, request_id, 0, 0, 0, result.reason.value)
        else:
            first = result[0].index if result else self.last_index + 1
            reply = ProposeReply(self.term, self.id, request_id, self.term, first, len(result))
        self._send(origin, reply)

    def _on_propose_request(self, m: ProposeRequest) -> None:
        if self.role is Role.LEADER:
            self._propose_for(m.sender, m.request_id, m.payloads)
            return
        reason = RefusalReason.NOT_LEADER if self.leader else RefusalReason.NO_LEADER
        reply = ProposeReply(self.term, self.id, m.request_id, 0, 0, 0, reason.value)
        self._send(m.sender, reply)

    def _on_propose_reply(self, m: ProposeReply) -> None:
        if m.refusal:
            try:
                reason = RefusalReason(m.refusal)
            except ValueError:
                reason = RefusalReason.NOT_LEADER
            message = f"the leader {m.sender!r} refused the proposal ({reason.value})"
            self._actions.append(act.ProposalFailed(m.request_id, reason, message))
            return
        proposals = tuple(
            ProposalId(m.proposal_term, m.first_index + i) for i in range(max(m.count, 0))
        )
        self._actions.append(act.ProposalForwarded(m.request_id, proposals))

    # ------------------------------------------------------------------ transfer (thesis §3.10)

    def _maybe_send_timeout_now(self) -> None:
        target = self._transfer_to
        if target is None or self.role is not Role.LEADER:
            return
        progress = self._progress.get(target)
        if progress is None:
            self._transfer_to = None
            return
        if progress.match_index >= self.last_index:
            self._send(target, TimeoutNow(self.term, self.id))
        else:
            self._send_append(target)

    # ------------------------------------------------------------------ helpers

    def _on_stale(self, message: Message) -> None:
        """A message from an older term: tell a stale leader the news, ignore the rest."""
        if isinstance(message, AppendEntries | InstallSnapshot):
            self._send(
                message.sender,
                AppendEntriesReply(self.term, self.id, False, reject_index=0, hint_index=0),
            )
        elif isinstance(message, ReadIndexRequest):
            self._send(
                message.sender,
                ReadIndexReply(self.term, self.id, message.request_id, 0, False),
            )
        elif isinstance(message, ProposeRequest):
            self._on_propose_request(message)

    def _refuse_proposal(self) -> Refusal | None:
        if self.role is not Role.LEADER:
            return self._refusal(
                RefusalReason.NOT_LEADER if self.leader else RefusalReason.NO_LEADER,
                f"this node is not the leader (leader: {self.leader or 'unknown'})",
            )
        if self._transfer_to is not None:
            return self._refusal(
                RefusalReason.TRANSFER_IN_PROGRESS,
                f"leadership is being transferred to {self._transfer_to!r}; retry there",
            )
        return None

    def _refusal(self, reason: RefusalReason, message: str) -> Refusal:
        leader = self.leader if self.leader != self.id else None
        return Refusal(reason, message, leader)

    def _send(self, to: NodeId, message: Message) -> None:
        self._actions.append(act.Send(to, message))

    def _save_hard_state(self) -> None:
        self._actions.append(act.SaveHardState(self.term, self.voted_for))

    def _reset_timer(self) -> None:
        kind = act.TimerKind.HEARTBEAT if self.role is Role.LEADER else act.TimerKind.ELECTION
        self._actions.append(act.ResetTimer(kind))

    def _announce(self) -> None:
        state = (self.role, self.term, self.leader)
        if state != self._announced:
            self._announced = state
            self._actions.append(act.RoleChanged(*state))
