"""An in-process transport: nodes of one :class:`MemoryNetwork` exchange messages directly.

For tests and examples that need no sockets. Messages are passed by reference (they
are immutable), optionally round-tripped through the wire codec to catch anything the
codec could not carry. Wrap it in :class:`~replobj.transport.faulty.FaultyTransport`
to add loss, delay and partitions.
"""

from __future__ import annotations

from collections.abc import Mapping

from replobj.errors import TransportError
from replobj.raft.messages import Message
from replobj.raft.types import NodeId

from .base import Address, Counters, Inbox, Receiver, StartAndClose, TransportStats, started
from .codec import DEFAULT_MAX_FRAME_BYTES, decode_frame, encode_frame

__all__ = ["MemoryNetwork", "MemoryTransport"]


class MemoryNetwork:
    """A switchboard: each started :class:`MemoryTransport` registers its inbox here.

    :param through_codec: encode and decode every message, as a real transport would.
    """

    def __init__(self, *, through_codec: bool = False) -> None:
        self.through_codec = through_codec
        self._inboxes: dict[NodeId, Inbox] = {}

    def transport(self, node_id: NodeId, *, inbox_limit: int = 8192) -> MemoryTransport:
        """A new transport for ``node_id`` on this network (start it before use)."""
        return MemoryTransport(self, node_id, inbox_limit)

    def _deliver(self, to: NodeId, message: Message) -> bool:
        inbox = self._inboxes.get(to)
        if inbox is None:
            return False
        if self.through_codec:
            message = decode_frame(encode_frame(message))
        return inbox.put_nowait(message)


class MemoryTransport(StartAndClose):
    """One node's endpoint on a :class:`MemoryNetwork`; peers are addressed by id only."""

    def __init__(self, network: MemoryNetwork, node_id: NodeId, inbox_limit: int) -> None:
        self._network = network
        self._node_id = node_id
        self._inbox_limit = inbox_limit
        self._inbox: Inbox | None = None
        self._counters = Counters()

    @property
    def node_id(self) -> NodeId:
        """This node's id."""
        return self._node_id

    @property
    def max_message_bytes(self) -> int:
        """The codec's default frame limit."""
        return DEFAULT_MAX_FRAME_BYTES

    @property
    def stats(self) -> TransportStats:
        """A snapshot of the counters."""
        return self._counters.snapshot()

    async def start(self) -> None:
        """Register on the network.

        :raises ~replobj.errors.TransportError: if the id is already registered.
        """
        if self._node_id in self._network._inboxes:
            raise TransportError(f"node {self._node_id!r} is already on this memory network")
        self._inbox = Inbox(self._inbox_limit)
        self._network._inboxes[self._node_id] = self._inbox

    async def aclose(self) -> None:
        """Leave the network; pending messages are discarded."""
        if self._network._inboxes.get(self._node_id) is self._inbox:
            del self._network._inboxes[self._node_id]
        if self._inbox is not None:
            self._inbox.close()

    def update_peers(self, peers: Mapping[NodeId, Address]) -> None:
        """Ignored: every node on the network is reachable by id."""

    def set_receiver(self, receiver: Receiver | None) -> bool:
        """Not supported: delivery runs in the sender's task; use :meth:`receive_batch`."""
        return False

    def send(self, to: NodeId, message: Message) -> None:
        """Deliver at once into ``to``'s inbox; drop and count if it is absent or full."""
        if self._network._deliver(to, message):
            self._counters.sent += 1
        else:
            self._counters.dropped += 1

    async def receive(self) -> Message:
        """Wait for the next message.

        :raises anyio.EndOfStream: once this transport is closed.
        """
        message = await started(self._inbox).get()
        self._counters.received += 1
        return message

    async def receive_batch(self, limit: int = 1024) -> list[Message]:
        """Wait for at least one message, then take up to ``limit`` already waiting.

        :raises anyio.EndOfStream: once this transport is closed.
        """
        batch = await started(self._inbox).get_batch(limit)
        self._counters.received += len(batch)
        return batch
