"""The leader's bookkeeping for one follower: what it has, what is in flight (etcd's Progress)."""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from .types import LogIndex, SnapshotMeta


class ReplicationState(enum.Enum):
    """How the leader currently feeds a follower."""

    PROBE = "probe"
    """Position unknown: one AppendEntries at a time until one succeeds."""
    REPLICATE = "replicate"
    """In sync: pipeline AppendEntries up to the in-flight limits."""
    SNAPSHOT = "snapshot"
    """Too far behind the compacted log: stream the snapshot, one chunk at a time."""


@dataclass(slots=True)
class Progress:
    """Replication state of one follower as seen by the leader."""

    next_index: LogIndex
    match_index: LogIndex = 0
    state: ReplicationState = ReplicationState.PROBE
    probe_sent: bool = False
    inflight: deque[tuple[LogIndex, int]] = field(default_factory=deque)
    inflight_bytes: int = 0
    snapshot: SnapshotMeta | None = None
    snapshot_offset: int = 0
    recent_active: bool = False
    acked_seq: int = 0
    match_seq: int = 0
    """The newest message sequence number the follower had seen when it last acknowledged."""
    lost_log_seq: int = 0
    """Sequence number of the rejection that showed the follower lost its log; older
    acknowledgements describe entries it no longer holds."""
    sent_commit: LogIndex = 0
    """The commit index last sent to this follower (a newer one is pushed without waiting)."""

    def update_match(self, index: LogIndex) -> bool:
        """Raise the match index (never lower it); True if it grew."""
        if index <= self.match_index:
            return False
        self.match_index = index
        self.next_index = max(self.next_index, index + 1)
        while self.inflight and self.inflight[0][0] <= index:
            self.inflight_bytes -= self.inflight.popleft()[1]
        return True

    def forget_match(self, next_index: LogIndex, seq: int) -> None:
        """The follower lost entries it had acknowledged (its data directory was wiped), as
        a rejection with sequence number ``seq`` showed: probe from ``next_index`` as if
        nothing were known of it, and from now on ignore acknowledgements older than ``seq``."""
        self.match_index = 0
        self.lost_log_seq = seq
        self.become_probe(next_index)

    def become_probe(self, next_index: LogIndex) -> None:
        """Forget the pipeline and probe from ``next_index`` (never below ``match + 1``)."""
        self.state = ReplicationState.PROBE
        self.next_index = max(next_index, self.match_index + 1)
        self.probe_sent = False
        self.inflight.clear()
        self.inflight_bytes = 0
        self.snapshot = None

    def become_replicate(self) -> None:
        """The follower's position is known: pipeline from ``next_index``."""
        self.state = ReplicationState.REPLICATE
        self.next_index = max(self.next_index, self.match_index + 1)
        self.probe_sent = False

    def become_snapshot(self, snapshot: SnapshotMeta) -> None:
        """Stream ``snapshot`` from its first byte."""
        self.state = ReplicationState.SNAPSHOT
        self.snapshot = snapshot
        self.snapshot_offset = 0
        self.inflight.clear()
        self.inflight_bytes = 0

    def record_sent(self, last_index: LogIndex, size: int) -> None:
        """Note an AppendEntries carrying entries up to ``last_index`` (``size`` bytes).

        While probing, ``next_index`` stays put until the follower confirms its position.
        """
        if self.state is ReplicationState.REPLICATE:
            self.next_index = last_index + 1
            self.inflight.append((last_index, size))
            self.inflight_bytes += size
        else:
            self.probe_sent = True

    def window_full(self, max_count: int, max_bytes: int) -> bool:
        """Whether the pipeline limits forbid another AppendEntries with entries."""
        if self.state is ReplicationState.PROBE:
            return self.probe_sent
        if self.state is ReplicationState.SNAPSHOT:
            return True
        return len(self.inflight) >= max_count or self.inflight_bytes >= max_bytes
