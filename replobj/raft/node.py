"""RaftNode: the whole protocol as a pure, deterministic state machine.

Rule of this module: every input of the protocol arrives here (method calls alone);
every effect leaves as an action in :meth:`RaftNode.take_actions`. The decisions are
made by the parts it combines, one concept per module: ``node_elections``,
``node_replication``, ``node_snapshots``, ``node_membership``, ``node_reads`` and
``node_proposals``, over the fields and outputs of ``node_state``. No clocks,
randomness, threads or I/O: the driver owns those. Section numbers refer to
Ongaro & Ousterhout 2014 ("§") and Ongaro's 2014 thesis ("thesis §").
"""

from __future__ import annotations

from collections.abc import Sequence

from . import actions as act
from . import membership
from .messages import (
    AppendEntries,
    AppendEntriesReply,
    InstallSnapshot,
    InstallSnapshotReply,
    Message,
    ProposeRequest,
    ReadIndexReply,
    ReadIndexRequest,
    RequestVote,
    RequestVoteReply,
    TimeoutNow,
    is_malformed,
)
from .node_elections import Elections
from .node_membership import MembershipChanges
from .node_proposals import ProposalForwarding
from .node_reads import LinearizableReads
from .node_replication import Replication
from .node_snapshots import SnapshotTransfer
from .progress import ReplicationState
from .types import (
    ClusterConfig,
    Entry,
    EntryKind,
    LogIndex,
    NodeId,
    ProposalId,
    Refusal,
    RefusalReason,
    Role,
    SnapshotMeta,
    Term,
)


class RaftNode(
    Elections,
    Replication,
    SnapshotTransfer,
    MembershipChanges,
    LinearizableReads,
    ProposalForwarding,
):
    """One Raft participant. Feed it inputs, then drain :meth:`take_actions`.

    The inputs are defined here; the queries (:attr:`last_index`, :meth:`status`, ...)
    come from :class:`~replobj.raft.node_state.NodeState`.

    :param node_id: this member's name.
    :param restored: durable state to start from (:meth:`RestoredState.bootstrap` for a
        new cluster, :meth:`RestoredState.joining` for a node to be added later).
    :param options: limits and switches; defaults suit a LAN.
    :param prepare_payload: applied by a leader to every command payload it appends, e.g.
        to stamp the leader's clock (DESIGN: commands get a leader-assigned timestamp). It
        must be deterministic in the simulator; if it raises, the proposal is refused.
    """

    # ------------------------------------------------------------------ driver API

    def take_actions(self, *, defer_commit_push: bool = False) -> list[act.Action]:
        """Flush batched work (appends to followers, read rounds) and return pending actions.

        Execute them in order, honouring each action's documented obligation.

        :param defer_commit_push: a leader whose commit index moved tells followers with
            the next AppendEntries; with nothing else to send it sends an empty one, unless
            this is true: then :attr:`commit_push_due` says one is owed, and a later call
            sends it, or a new entry carries the commit index first (a driver that calls
            again right after its callers ran saves two messages per sequential call).
        """
        self._flush_own_appends()
        if self.role is Role.LEADER:
            if self._reads.start_round(self._seq + 1):
                self._seq += 1
                self._broadcast_heartbeat()
                self._confirm_reads()
            elif self._must_broadcast or self.commit_push_due:
                self._send_new_entries_and_commit(push_commit=not defer_commit_push)
            self._must_broadcast = False
        self._announce()
        actions, self._actions = self._actions, []
        return actions

    @property
    def commit_push_due(self) -> bool:
        """A leader owes a follower its new commit index (see :meth:`take_actions`)."""
        return self.role is Role.LEADER and any(
            p.sent_commit < self.commit_index and p.state is ReplicationState.REPLICATE
            for p in self._progress.values()
        )

    def _send_new_entries_and_commit(self, *, push_commit: bool) -> None:
        must_broadcast = self._must_broadcast
        for peer, progress in self._progress.items():
            if must_broadcast:
                self._send_append(peer)
            if (
                push_commit
                and progress.sent_commit < self.commit_index
                and progress.state is ReplicationState.REPLICATE
            ):
                self._send_entries(peer, progress, [])

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
        """Add ``node`` as a learner; with ``promote`` it becomes a voter once caught up.

        With ``promote``, a learner that is already a member is marked for promotion.
        """
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
        """Hand leadership to ``to`` (or the most caught-up voter) via TimeoutNow (thesis §3.10).

        A repeated request for the transfer already under way is ignored, as in etcd and
        raft-rs: the transfer is still abandoned one election timeout after the first.
        """
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
        if to == self._transfer_to:
            return None  # already under way: a repeat must not extend its deadline (etcd)
        self._transfer_to = to
        self._transfer_ticks = 0
        self._maybe_send_timeout_now()
        return None

    def force_new_cluster(self) -> ProposalId | Refusal:
        """Disaster recovery: make this node the only voter of its cluster, on its own log.

        Call it once, right after constructing the node from its durable state, when a
        majority of the voters lost their data (see :class:`~replobj.raft.ElectionStall`).
        Like etcd's ``--force-new-cluster``, it appends a configuration entry naming only
        this node (in a new term, after everything the log holds), so the node elects
        itself and commits its whole log, uncommitted tail included. The other members
        are then added back (:meth:`add_member`) on empty stores. This breaks Raft's
        guarantee on purpose: entries that other members acknowledged beyond this log's
        end are lost, and nothing here can tell which they were.

        :returns: the configuration entry's id, or a refusal if this node has no log or
            configuration to recover from, or has already taken part in the protocol.
        """
        if self.last_index == 0 and not self.config.members:
            return self._refusal(
                RefusalReason.INVALID_ARGUMENT,
                "this node holds no log and no configuration: there is nothing to recover "
                "from; force a new cluster on the most up-to-date surviving member",
            )
        if self.role is not Role.FOLLOWER or self.leader is not None:
            return self._refusal(
                RefusalReason.INVALID_ARGUMENT,
                "force_new_cluster must be the first input after a restart",
            )
        self.term += 1
        self.voted_for = self.id
        self._catch_up_to = 0
        self._save_hard_state()
        alone = ClusterConfig(voters=frozenset({self.id}))
        entry = Entry(self.term, self.last_index + 1, EntryKind.CONFIG, alone.encode())
        self._store_entries([entry])
        self._reset_timer()
        return ProposalId(entry.term, entry.index)

    def handle_timeout(self) -> None:
        """The timer last armed by ``ResetTimer`` fired."""
        if self.role is Role.LEADER:
            self._tick_leader()
            return
        self._leader_alive = False
        if not self.config.is_voter(self.id) or self._vote_withheld():
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

    def handle_snapshot_rejected(self, meta: SnapshotMeta) -> None:
        """The driver refused snapshot ``meta`` (its bytes are not a valid state) and
        discarded what it staged: stop waiting for that install and ask the leader to
        send the snapshot again from offset 0."""
        if self._installing != meta:
            return
        self._installing = None
        self._incoming = None
        if self.leader is not None and self.role is Role.FOLLOWER:
            reply = InstallSnapshotReply(
                self.term, self.id, meta.last_index, 0, False, self._leader_seq
            )
            self._send(self.leader, reply)

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
            voter = self.config.is_voter(self.id) and not self._vote_withheld()
            if voter and self.role is not Role.LEADER:
                self._campaign(transfer=True)
        elif isinstance(message, ReadIndexRequest):
            self._on_read_request(message)
        elif isinstance(message, ReadIndexReply):
            self._on_read_reply(message)
        elif isinstance(message, ProposeRequest):
            self._on_propose_request(message)
        else:
            self._on_propose_reply(message)

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
