"""``node.metrics()``: what a member has done since it started, as plain numbers.

:class:`NodeMetrics` is a snapshot: the Raft position (role, term, commit and applied
index, apply lag), the calls (in flight, waiting for room, and a histogram of how long
commands took from the call to their outcome on this member), elections and leader
changes seen, snapshots taken and installed (size and time of the last one), and the
transport's message counters. Counters start at zero when the node starts.
:mod:`replobj.prometheus` exports the same numbers for Prometheus.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

__all__ = ["LATENCY_BUCKETS", "LatencyHistogram", "NodeMetrics", "RuntimeCounters"]

LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
)
"""Upper bounds (seconds) of the command latency histogram's buckets; one more counts
everything above the last."""


class LatencyHistogram:
    """Counts of command latencies per bucket of :data:`LATENCY_BUCKETS` (the call hot
    path: one bisect and two additions per observation)."""

    __slots__ = ("counts", "total", "total_seconds")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0
        self.total_seconds = 0.0

    def observe(self, seconds: float, calls: int = 1) -> None:
        """Count ``calls`` calls that each took ``seconds``."""
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += calls
        self.total += calls
        self.total_seconds += seconds * calls

    def cumulative(self) -> tuple[tuple[float, int], ...]:
        """``(upper bound, calls at or below it)`` per bucket, the last bound ``inf``."""
        running, out = 0, []
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return tuple(out)


@dataclass(slots=True)
class RuntimeCounters:
    """What the runtime counts as it goes (kept by the runtime; read by ``metrics()``)."""

    elections: int = 0
    """Times this member became a candidate (pre-votes not counted)."""
    leader_changes: int = 0
    """Times the leader this member knows of changed to another known leader."""
    last_leader: str | None = None


@dataclass(frozen=True, slots=True)
class NodeMetrics:
    """A member's figures at one moment (``node.metrics()``).

    :param node_id: the member.
    :param role: ``"follower"``, ``"pre-candidate"``, ``"candidate"`` or ``"leader"``.
    :param term: its current term.
    :param commit_index: the highest index it knows to be committed.
    :param applied_index: the highest index it has applied.
    :param calls_in_flight: commands its callers are waiting for.
    :param calls_waiting: callers waiting for room (``max_pending_calls``).
    :param command_latency: seconds from a call to its outcome on this member, as
        ``(upper bound, cumulative count)`` per bucket; with :attr:`commands` and
        :attr:`command_seconds` a Prometheus-style histogram.
    :param commands: commands completed (the histogram's count).
    :param command_seconds: their summed latency.
    :param elections: times it became a candidate.
    :param leader_changes: times the leader it knows of changed.
    :param snapshots_taken: snapshots it took of its own state.
    :param snapshots_installed: snapshots it installed from a leader.
    :param snapshot_bytes: size of the last snapshot it took (0: none yet).
    :param snapshot_seconds: how long taking it took (pickling and storing).
    :param messages_sent: messages its transport sent.
    :param messages_received: messages it received.
    :param messages_dropped: outgoing messages dropped (queue full, peer unknown).
    :param messages_rejected: incoming frames or messages refused (bad proof, malformed).
    :param peer_lag: on a leader, entries each follower is behind.
    """

    node_id: str
    role: str
    term: int
    commit_index: int
    applied_index: int
    calls_in_flight: int
    calls_waiting: int
    command_latency: tuple[tuple[float, int], ...]
    commands: int
    command_seconds: float
    elections: int
    leader_changes: int
    snapshots_taken: int
    snapshots_installed: int
    snapshot_bytes: int
    snapshot_seconds: float
    messages_sent: int
    messages_received: int
    messages_dropped: int
    messages_rejected: int
    peer_lag: dict[str, int] = field(default_factory=dict)

    @property
    def apply_lag(self) -> int:
        """Committed entries not applied here yet."""
        return max(0, self.commit_index - self.applied_index)
