"""Elections (§5.2), pre-vote (thesis §9.6), role changes and leadership transfer (thesis §3.10)."""

from __future__ import annotations

from .messages import RequestVote, RequestVoteReply, TimeoutNow
from .node_state import NodeState
from .status import ElectionStall
from .types import Entry, EntryKind, NodeId, Role, Term


class Elections(NodeState):
    """Becoming a candidate, voting, winning, stepping down, and handing leadership over."""

    def _start_pre_vote(self) -> None:
        """Ask whether an election could be won before disturbing anyone (thesis §9.6)."""
        self.role = Role.PRE_CANDIDATE
        self.leader = None
        self._votes = {self.id}
        self._vote_replies = {}
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
        self._vote_replies = {}
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
        withheld = self._vote_withheld()
        up_to_date = self._log.is_up_to_date(m.last_log_index, m.last_log_term)
        up_to_date = up_to_date and not withheld
        if m.pre_vote:
            granted = m.term > self.term and up_to_date and not self._leader_alive
            if self.role is Role.LEADER:
                granted = False
            reply_term = m.term if granted else self.term
            reply = RequestVoteReply(reply_term, self.id, granted, True, withheld, self.last_index)
            self._send(m.sender, reply)
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
        reply = RequestVoteReply(self.term, self.id, granted, False, withheld, self.last_index)
        self._send(m.sender, reply)

    def _on_vote_reply(self, m: RequestVoteReply) -> None:
        self._diagnose_stall(m)
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

    def _diagnose_stall(self, m: RequestVoteReply) -> None:
        """Record whether voters that withhold their votes leave this election no quorum.

        Only a reply from a voter that no longer withholds clears a stall: a round's
        first replies alone do not show the whole picture.
        """
        expected = Role.PRE_CANDIDATE if m.pre_vote else Role.CANDIDATE
        if self.role is not expected or m.sender not in self.config.all_voters:
            return
        self._vote_replies[m.sender] = m
        if self._stall is not None and m.sender in self._stall.withholding and not m.withheld:
            self._stall = None
        replies = self._vote_replies.values()
        withholding = {r.sender: r.last_index for r in replies if r.withheld}
        if not withholding or self.config.has_quorum(self.config.all_voters - set(withholding)):
            return
        survivors = {r.sender: r.last_index for r in replies if not r.withheld}
        survivors[self.id] = self.last_index
        term = self.term + 1 if m.pre_vote else self.term
        self._stall = ElectionStall(term, withholding, survivors)

    def _become_follower(self, term: Term, leader: NodeId | None) -> None:
        if leader is not None:
            self._stall = None
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
        self._stall = None
        self._leader_alive = True
        self._fail_forwarded_reads("this node became leader")
        self._progress = {}
        self._sync_progress()
        self._ticks = 0
        self._transfer_to = None
        self._reset_timer()
        self._term_start = self.last_index + 1
        index = self.last_index + 1
        if self._log.config_index == 0:
            # A cluster bootstrapped from its founders' list has its configuration only in
            # each founder's initial snapshot; state it in the log (as this term's first
            # entry) so a member restarted to join on a wiped disk learns it is a voter.
            self._append_own([Entry(self.term, index, EntryKind.CONFIG, self.config.encode())])
        else:
            self._append_own([Entry(self.term, index, EntryKind.NOOP)])

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
