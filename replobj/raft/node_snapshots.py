"""Sending and receiving snapshots in chunks (§7)."""

from __future__ import annotations

from . import actions as act
from .messages import InstallSnapshot, InstallSnapshotReply
from .node_state import NodeState, _IncomingSnapshot
from .progress import Progress, ReplicationState
from .types import NodeId, Role


class SnapshotTransfer(NodeState):
    """InstallSnapshot chunks out from the leader, in to a follower, and their replies."""

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
            # The follower's position is now known: replicate from it at once rather than
            # probe until the next heartbeat (etcd-io/etcd#10308), so a transfer waiting for
            # it or its promotion to voter does not wait a heartbeat either.
            progress.update_match(m.last_index)
            progress.become_probe(m.last_index + 1)
            progress.become_replicate()
            self._maybe_commit()
            if self.role is Role.LEADER and m.sender in self._progress:
                self._send_append(m.sender)
                self._after_peer_ack(m.sender, progress)
            return
        progress.snapshot_offset = m.next_offset
        self._send_snapshot_chunk(m.sender, progress)
