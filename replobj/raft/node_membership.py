"""Membership changes: learners, joint consensus and removed leaders (thesis §4)."""

from __future__ import annotations

from . import membership
from .messages import TimeoutNow
from .node_state import NodeState
from .progress import Progress
from .types import ClusterConfig, Entry, EntryKind, NodeId, ProposalId, Refusal, RefusalReason, Role


class MembershipChanges(NodeState):
    """Appending configuration entries and following them with per-peer progress."""

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
