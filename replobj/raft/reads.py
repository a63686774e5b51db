"""ReadIndex bookkeeping on the leader (thesis §6.4).

A read is registered with the commit index at that moment, waits for the next
heartbeat round (``seq``), and is ready once a quorum has echoed a sequence number at
least that high: leadership was confirmed after the read arrived. Reads that arrive
before the leader has committed an entry of its own term wait for that commit first.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .types import LogIndex, NodeId


@dataclass(frozen=True, slots=True)
class PendingRead:
    """One linearizable read waiting on the leader; ``origin`` is who asked (maybe the leader)."""

    origin: NodeId
    request_id: int
    read_index: LogIndex = 0
    seq: int = 0


class ReadTracker:
    """Queues of reads in their three stages: before commit-in-term, unsent, confirming."""

    def __init__(self) -> None:
        self.awaiting_commit: list[PendingRead] = []
        self.awaiting_round: list[PendingRead] = []
        self.confirming: deque[PendingRead] = deque()

    def __len__(self) -> int:
        return len(self.awaiting_commit) + len(self.awaiting_round) + len(self.confirming)

    def add(self, origin: NodeId, request_id: int, commit: LogIndex | None) -> None:
        """Register a read; ``commit`` is ``None`` while the leader's term has nothing committed."""
        if commit is None:
            self.awaiting_commit.append(PendingRead(origin, request_id))
        else:
            self.awaiting_round.append(PendingRead(origin, request_id, commit))

    def term_committed(self, commit: LogIndex) -> None:
        """The leader's first entry of its term committed: queued reads may now proceed."""
        for read in self.awaiting_commit:
            self.awaiting_round.append(PendingRead(read.origin, read.request_id, commit))
        self.awaiting_commit.clear()

    def start_round(self, seq: int) -> bool:
        """Assign ``seq`` to the reads waiting for a heartbeat round; True if there were any."""
        if not self.awaiting_round:
            return False
        for read in self.awaiting_round:
            self.confirming.append(PendingRead(read.origin, read.request_id, read.read_index, seq))
        self.awaiting_round.clear()
        return True

    def pop_confirmed(self, confirmed_seq: int) -> list[PendingRead]:
        """Reads whose round is confirmed by a quorum (``seq <= confirmed_seq``), oldest first."""
        ready: list[PendingRead] = []
        while self.confirming and self.confirming[0].seq <= confirmed_seq:
            ready.append(self.confirming.popleft())
        return ready

    def drain(self) -> list[PendingRead]:
        """Remove and return every pending read (leadership lost)."""
        reads = [*self.awaiting_commit, *self.awaiting_round, *self.confirming]
        self.awaiting_commit.clear()
        self.awaiting_round.clear()
        self.confirming.clear()
        return reads
