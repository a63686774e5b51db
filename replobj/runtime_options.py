"""Timing and snapshot settings of the runtime (:class:`RuntimeOptions`)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    """Timing and snapshot settings of a node.

    The election timeout is drawn uniformly from ``[election_timeout, 2 *
    election_timeout)``; it must stay well above event-loop stalls (GC, big snapshots)
    or busy nodes call spurious elections.
    """

    election_timeout: float = 1.0
    heartbeat_interval: float = 0.1
    snapshot_entries: int = 20_000
    """Take a snapshot once this many entries were applied since the last one."""
    snapshot_chunk_bytes: int = 1 << 20
    snapshot_bytes: int = 64 << 20
    """Or once the entries applied since the last one carry this many payload bytes (an
    entry may pack many commands, so counting entries alone does not bound the log)."""

    def __post_init__(self) -> None:
        if self.heartbeat_interval <= 0 or self.election_timeout <= self.heartbeat_interval:
            raise ValueError("need 0 < heartbeat_interval < election_timeout")
        if self.snapshot_entries < 1:
            raise ValueError("snapshot_entries must be at least 1")
        if self.snapshot_bytes < 1:
            raise ValueError("snapshot_bytes must be at least 1")

    @property
    def election_ticks(self) -> int:
        """Heartbeats per election timeout (the core counts time in heartbeats)."""
        return max(2, math.ceil(self.election_timeout / self.heartbeat_interval))
