"""Linearizable reads through ReadIndex (thesis §6.4), on the leader or forwarded to it."""

from __future__ import annotations

from . import actions as act
from .messages import ReadIndexReply, ReadIndexRequest
from .node_state import NodeState
from .reads import PendingRead
from .types import LogIndex, Role


class LinearizableReads(NodeState):
    """Confirming reads with a heartbeat quorum and answering them, here or remotely."""

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
