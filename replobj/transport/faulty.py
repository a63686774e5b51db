"""A wrapper that makes any transport lossy, slow, duplicating or partitioned, for tests.

Faults are applied where this node sends (drop, duplicate, delay, one-way partition
towards a peer) and where it receives (one-way partition from a peer), so wrapping
every node's transport models any network. All knobs can be changed while running;
every random choice comes from one generator seeded by ``seed`` (print it on failure).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup

from replobj.raft.messages import Message
from replobj.raft.types import NodeId

from .base import Address, Receiver, StartAndClose, Transport, TransportStats

__all__ = ["FaultStats", "FaultyTransport"]


@dataclass(frozen=True, slots=True)
class FaultStats:
    """What the wrapper did to the traffic so far."""

    dropped: int = 0
    duplicated: int = 0
    delayed: int = 0
    blocked_outgoing: int = 0
    blocked_incoming: int = 0


class FaultyTransport(StartAndClose):
    """Wraps ``inner`` and injects faults; satisfies :class:`~replobj.transport.base.Transport`.

    :param inner: the real transport (TCP, UDP, or an in-memory one).
    :param seed: seed of the generator behind every random choice.
    :param drop_rate: probability that an outgoing message is discarded.
    :param duplicate_rate: probability that an outgoing message is sent twice.
    :param delay: each outgoing message (and copy) waits uniformly within this range of
        seconds before reaching ``inner``, so delays also reorder messages.
    """

    def __init__(
        self,
        inner: Transport,
        *,
        seed: int = 0,
        drop_rate: float = 0.0,
        duplicate_rate: float = 0.0,
        delay: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self.inner = inner
        self.seed = seed
        self.drop_rate = drop_rate
        self.duplicate_rate = duplicate_rate
        self.delay = delay
        self._rng = random.Random(seed)
        self._blocked_to: set[NodeId] = set()
        self._blocked_from: set[NodeId] = set()
        self._faults = dict.fromkeys(FaultStats.__slots__, 0)
        self._tg: TaskGroup | None = None

    @property
    def node_id(self) -> NodeId:
        """The wrapped transport's node id."""
        return self.inner.node_id

    @property
    def max_message_bytes(self) -> int:
        """The wrapped transport's limit."""
        return self.inner.max_message_bytes

    @property
    def stats(self) -> TransportStats:
        """The wrapped transport's counters (injected faults are in :attr:`faults`)."""
        return self.inner.stats

    @property
    def faults(self) -> FaultStats:
        """Counters of the injected faults."""
        return FaultStats(**self._faults)

    def partition(self, peer: NodeId, *, outgoing: bool = True, incoming: bool = True) -> None:
        """Cut traffic to ``peer`` (``outgoing``) and/or from it (``incoming``)."""
        if outgoing:
            self._blocked_to.add(peer)
        if incoming:
            self._blocked_from.add(peer)

    def heal(self, peer: NodeId | None = None) -> None:
        """Restore traffic with ``peer`` in both directions, or with every peer if ``None``."""
        if peer is None:
            self._blocked_to.clear()
            self._blocked_from.clear()
        else:
            self._blocked_to.discard(peer)
            self._blocked_from.discard(peer)

    async def start(self) -> None:
        """Start the wrapped transport and the task group that carries delayed messages."""
        await self.inner.start()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()

    async def aclose(self) -> None:
        """Discard delayed messages and close the wrapped transport."""
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
            await self._tg.__aexit__(None, None, None)
            self._tg = None
        await self.inner.aclose()

    def update_peers(self, peers: Mapping[NodeId, Address]) -> None:
        """Forwarded to the wrapped transport."""
        self.inner.update_peers(peers)

    def set_receiver(self, receiver: Receiver | None) -> bool:
        """Forwarded to ``inner``, behind the incoming partitions."""
        if receiver is None:
            return self.inner.set_receiver(None)

        def kept(batch: list[Message]) -> None:
            blocked = self._blocked_from
            if blocked:
                kept = [m for m in batch if m.sender not in blocked]
                self._faults["blocked_incoming"] += len(batch) - len(kept)
                batch = kept
            if batch:
                receiver(batch)

        return self.inner.set_receiver(kept)

    def send(self, to: NodeId, message: Message) -> None:
        """Apply partition, drop, duplication and delay, then hand over to ``inner``."""
        if to in self._blocked_to:
            self._faults["blocked_outgoing"] += 1
            return
        if self.drop_rate and self._rng.random() < self.drop_rate:
            self._faults["dropped"] += 1
            return
        copies = 1
        if self.duplicate_rate and self._rng.random() < self.duplicate_rate:
            copies = 2
            self._faults["duplicated"] += 1
        low, high = self.delay
        for _ in range(copies):
            if high <= 0 or self._tg is None:
                self.inner.send(to, message)
                continue
            self._faults["delayed"] += 1
            self._tg.start_soon(self._send_later, self._rng.uniform(low, high), to, message)

    async def _send_later(self, seconds: float, to: NodeId, message: Message) -> None:
        await anyio.sleep(seconds)
        if to not in self._blocked_to:
            self.inner.send(to, message)

    async def receive_batch(self, limit: int = 1024) -> list[Message]:
        """Up to ``limit`` waiting messages from ``inner``, without partitioned senders."""
        while True:
            batch = await self.inner.receive_batch(limit)
            kept = [m for m in batch if m.sender not in self._blocked_from]
            self._faults["blocked_incoming"] += len(batch) - len(kept)
            if kept:
                return kept

    async def receive(self) -> Message:
        """The next message from ``inner`` whose sender is not partitioned away."""
        while True:
            message = await self.inner.receive()
            if message.sender not in self._blocked_from:
                return message
            self._faults["blocked_incoming"] += 1
