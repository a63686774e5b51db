"""The simulated network: per-message latency, loss, duplication, reordering, partitions.

Reordering comes from independent random delays (plus rare long spikes). Partitions
are sets of blocked directed links, so one-way partitions are just half of a symmetric
one; a link is checked both when a message is sent and when it would arrive.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from replobj.raft import NodeId


@dataclass(frozen=True, slots=True)
class NetworkFaults:
    """How unreliable the links are; ticks are the simulator's time unit."""

    loss: float = 0.0
    """Probability that a message is dropped."""
    duplicate: float = 0.0
    """Probability that a delivered message is delivered a second time, later."""
    min_latency: int = 1
    """Smallest one-way delay."""
    max_latency: int = 5
    """Largest ordinary one-way delay (exclusive)."""
    spike: float = 0.0
    """Probability of a long delay (up to ``spike_latency``), which reorders messages."""
    spike_latency: int = 100
    """Longest delay of a spike."""


RELIABLE = NetworkFaults()
"""Lossless links with short latencies, used once the fault phase is over."""


class Network:
    """Decides the fate of each message from one shared random generator."""

    def __init__(self, rng: random.Random, faults: NetworkFaults = RELIABLE) -> None:
        self.rng = rng
        self.faults = faults
        self.blocked: Counter[tuple[NodeId, NodeId]] = Counter()
        self.sent = 0
        self.dropped = 0

    def delays(self, src: NodeId, dst: NodeId) -> tuple[int, ...]:
        """Arrival delays of one message: ``()`` if lost, two values if duplicated."""
        self.sent += 1
        if self.blocked and self.blocked[(src, dst)]:
            self.dropped += 1
            return ()
        faults = self.faults
        rng = self.rng
        if faults.loss and rng.random() < faults.loss:
            self.dropped += 1
            return ()
        first = self._latency(faults)
        if faults.duplicate and rng.random() < faults.duplicate:
            return (first, self._latency(faults))
        return (first,)

    def _latency(self, faults: NetworkFaults) -> int:
        draw = self.rng.random
        if faults.spike and draw() < faults.spike:
            return faults.max_latency + int(draw() * (faults.spike_latency - faults.max_latency))
        return faults.min_latency + int(draw() * (faults.max_latency - faults.min_latency))

    def is_blocked(self, src: NodeId, dst: NodeId) -> bool:
        """Whether the directed link ``src -> dst`` is currently cut."""
        return bool(self.blocked) and self.blocked[(src, dst)] > 0

    def cut(self, links: Iterable[tuple[NodeId, NodeId]]) -> list[tuple[NodeId, NodeId]]:
        """Block directed links (cuts stack); returns them for :meth:`restore`."""
        done = sorted(set(links))
        self.blocked.update(done)
        return done

    def restore(self, links: Iterable[tuple[NodeId, NodeId]]) -> None:
        """Undo one :meth:`cut` of these links."""
        for link in links:
            self.blocked[link] -= 1
            if self.blocked[link] <= 0:
                del self.blocked[link]

    def heal(self) -> None:
        """Remove every partition."""
        self.blocked.clear()


def split_links(
    side: Iterable[NodeId], others: Iterable[NodeId], *, both_ways: bool = True
) -> list[tuple[NodeId, NodeId]]:
    """Directed links between two groups: ``side -> others`` (and back if ``both_ways``)."""
    side_list = sorted(side)
    other_list = sorted(others)
    links = [(a, b) for a in side_list for b in other_list if a != b]
    if both_ways:
        links += [(b, a) for a in side_list for b in other_list if a != b]
    return links
