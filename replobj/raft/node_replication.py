"""Log replication (§5.3) and commitment (§5.4.2), from the follower's and the leader's side."""

from __future__ import annotations

from collections.abc import Sequence

from . import actions as act
from .messages import AppendEntries, AppendEntriesReply, InstallSnapshot
from .node_state import NodeState
from .progress import Progress, ReplicationState
from .types import Entry, LogIndex, NodeId, Role, Term


class Replication(NodeState):
    """AppendEntries in and out, fast backtracking, heartbeats and the commit rule."""

    # ------------------------------------------------------------------ follower side

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
        joining = self.last_index == 0 and not self.config.members
        if joining and m.leader_commit > 0 and not self._catch_up_to:
            self._catch_up_to = m.leader_commit
            self._save_hard_state()
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
        if self._reply_would_tell_nothing_new(m):
            return
        self._reply_append(True)

    def _reply_would_tell_nothing_new(self, m: AppendEntries) -> bool:
        """Whether a successful reply now can be left out: the leader learns nothing it
        will not learn otherwise (a sequential call costs two messages per follower, not
        four).

        Entries verified but not yet durable: :meth:`handle_log_persisted` replies once
        they are, with the latest ``seq`` (it echoes heartbeats and read rounds, later by
        one sync). Else an empty AppendEntries (a commit-index push) whose reply would equal
        the last one sent (same term, ``seq`` and match index) needs none. Rejections always
        go out, and so does a reply to entries once durable (a duplicate too: the first
        reply may have been lost) and to every new heartbeat round (a new ``seq``).
        """
        ack = self._follower_ack()
        if ack < self._verified_index:
            return True
        return not m.entries and self._last_reply == (self.term, self._leader_seq, ack)

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
        ack = self._follower_ack()
        reply = AppendEntriesReply(
            self.term, self.id, success, match_index=ack, seq=self._leader_seq
        )
        if success:
            self._last_reply = (self.term, self._leader_seq, ack)
        self._send(self.leader, reply)

    def _advance_follower_commit(self, leader_commit: LogIndex) -> None:
        commit = min(leader_commit, self._verified_index)
        if commit > self.commit_index:
            self.commit_index = commit
            self._apply_committed()

    # ------------------------------------------------------------------ leader side

    def _on_append_reply(self, m: AppendEntriesReply) -> None:
        if m.success and m.match_index > self.last_index:
            self.ignored_messages += 1  # acknowledges entries we never had
            return
        progress = self._peer_progress(m.sender, m.seq)
        if progress is None:
            return
        if m.success and m.seq < progress.lost_log_seq:
            self.ignored_messages += 1  # sent before the follower lost its log
        elif m.success:
            progress.match_seq = max(progress.match_seq, m.seq)
            if progress.update_match(m.match_index):
                self._maybe_commit()
            if progress.state is ReplicationState.PROBE:
                progress.become_replicate()
            self._after_peer_ack(m.sender, progress)
        elif self._lost_acknowledged_entries(progress, m):
            progress.forget_match(m.hint_index + 1, m.seq)
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

    @staticmethod
    def _lost_acknowledged_entries(progress: Progress, m: AppendEntriesReply) -> bool:
        """A rejection newer than the follower's last acknowledgement, for an index it had
        acknowledged: the follower restarted on an empty or older data directory (in this
        term the leader never asks it to drop a matching entry). A stale rejection is older
        than that acknowledgement and changes nothing."""
        return (
            m.reject_index <= progress.match_index
            and m.hint_index < progress.match_index
            and m.seq > progress.match_seq
        )

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

    # ------------------------------------------------------------------ commit (§5.4.2)

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
