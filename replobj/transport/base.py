"""The transport contract the runtime programs against, and the pieces all transports share.

A transport moves :data:`~replobj.raft.messages.Message` values between nodes by
:data:`~replobj.raft.types.NodeId`. Sending never waits for a peer: each peer has a
bounded queue and a message that does not fit is dropped and counted (Raft
retransmits). Received messages come out of one bounded stream, in arrival order.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, TypeAlias, runtime_checkable

from replobj.errors import TransportError
from replobj.raft.messages import Message
from replobj.raft.types import NodeId

__all__ = [
    "Address",
    "Transport",
    "TransportStats",
    "is_loopback",
    "logger",
    "require_secret_or_loopback",
]

Address: TypeAlias = tuple[str, int]
"""A ``(host, port)`` pair; the host is an IP address or a name."""

logger = logging.getLogger("replobj.transport")
"""Where every transport logs refused peers, failed connections and dropped frames."""


@dataclass(frozen=True, slots=True)
class TransportStats:
    """Counters since the transport was created.

    ``dropped`` counts outgoing messages discarded (queue full, message too large,
    peer unknown); ``rejected`` counts incoming frames, datagrams or connections
    refused (bad proof, malformed, replayed, too large). ``last_error`` describes
    the most recent failure, e.g. an :class:`~replobj.errors.AuthenticationError`
    met while connecting.
    """

    sent: int = 0
    dropped: int = 0
    received: int = 0
    rejected: int = 0
    last_error: str | None = None


@runtime_checkable
class Transport(Protocol):
    """Moves Raft messages between nodes; implemented by TCP, UDP and test wrappers.

    Use as ``async with transport:`` (or call :meth:`start` and :meth:`aclose` from
    the same task).
    """

    @property
    def node_id(self) -> NodeId:
        """This node's id; every message it sends must carry it as ``sender``."""
        ...

    @property
    def max_message_bytes(self) -> int:
        """Largest encoded message this transport carries; size Raft batches below it."""
        ...

    @property
    def stats(self) -> TransportStats:
        """A snapshot of the counters."""
        ...

    async def start(self) -> None:
        """Start listening and sending.

        :raises ~replobj.errors.TransportError: if the listening address cannot be bound.
        """
        ...

    def send(self, to: NodeId, message: Message) -> None:
        """Queue ``message`` for ``to`` without waiting; drop and count it if the queue is full."""
        ...

    async def receive(self) -> Message:
        """Wait for the next message from any peer.

        :raises anyio.EndOfStream: once the transport is closed.
        """
        ...

    def update_peers(self, peers: Mapping[NodeId, Address]) -> None:
        """Replace the address book (membership changed); links to removed peers close."""
        ...

    async def aclose(self) -> None:
        """Close every connection and stop all tasks; queued messages are discarded."""
        ...


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost`` or a loopback IP)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_secret_or_loopback(secret: bytes | None, addresses: list[Address]) -> None:
    """Refuse to run unauthenticated anywhere but on loopback.

    :raises ~replobj.errors.TransportError: if ``secret`` is missing or empty and any
        address is not loopback.
    """
    if secret:
        return
    exposed = sorted({host for host, _ in addresses if not is_loopback(host)})
    if exposed:
        raise TransportError(
            f"no cluster secret configured but {exposed} are not loopback addresses; "
            "pass secret=... (the same bytes on every node)"
        )
