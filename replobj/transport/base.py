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
from types import TracebackType
from typing import Protocol, Self, TypeAlias, runtime_checkable

import anyio
from anyio.abc import TaskGroup

from replobj.errors import TransportError
from replobj.raft.messages import Message
from replobj.raft.types import NodeId

__all__ = [
    "Address",
    "Counters",
    "Inbox",
    "StartAndClose",
    "TaskedTransport",
    "Transport",
    "TransportStats",
    "describe",
    "is_loopback",
    "logger",
    "require_secret_or_loopback",
    "started",
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


@dataclass(slots=True)
class Counters:
    """The mutable counters behind :class:`TransportStats`."""

    sent: int = 0
    dropped: int = 0
    received: int = 0
    rejected: int = 0
    last_error: str | None = None

    def snapshot(self) -> TransportStats:
        """An immutable copy."""
        return TransportStats(
            self.sent, self.dropped, self.received, self.rejected, self.last_error
        )


class Inbox:
    """The bounded stream of received messages behind ``receive`` and ``receive_batch``."""

    __slots__ = ("_in", "_out")

    def __init__(self, limit: int) -> None:
        self._in, self._out = anyio.create_memory_object_stream[Message](limit)

    def put_nowait(self, message: Message) -> bool:
        """Queue ``message`` if there is room; say whether it was queued."""
        try:
            self._in.send_nowait(message)
        except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False
        return True

    async def put(self, message: Message) -> None:
        """Queue ``message``, waiting for room (backpressure on the sending peer)."""
        await self._in.send(message)

    async def get(self) -> Message:
        """The next message; :raises anyio.EndOfStream: once closed."""
        try:
            return await self._out.receive()
        except anyio.ClosedResourceError:
            raise anyio.EndOfStream from None

    async def get_batch(self, limit: int) -> list[Message]:
        """At least one message and up to ``limit``; :raises anyio.EndOfStream: once closed."""
        batch = [await self.get()]
        while len(batch) < limit:
            try:
                batch.append(self._out.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                break
        return batch

    def close(self) -> None:
        """Close both ends; waiting receivers get :class:`anyio.EndOfStream`."""
        self._in.close()
        self._out.close()


def started(inbox: Inbox | None) -> Inbox:
    """``inbox``, or :raises ~replobj.errors.TransportError: if the transport is not started."""
    if inbox is None:
        raise TransportError("the transport is not started; call start() first")
    return inbox


def describe(exc: BaseException) -> str:
    """``"ErrorType: message"``, as recorded in :attr:`TransportStats.last_error`."""
    return f"{type(exc).__name__}: {exc}"


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

    async def receive_batch(self, limit: int = 1024) -> list[Message]:
        """Wait for at least one message, then take up to ``limit`` already waiting.

        Handling a batch before sending lets replies coalesce into fewer writes.

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


class StartAndClose:
    """``async with`` for anything with ``start()`` and ``aclose()`` (every transport)."""

    async def start(self) -> None:
        """Start; implemented by subclasses."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Stop and release everything; implemented by subclasses."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class TaskedTransport(StartAndClose):
    """Plumbing shared by the socket transports: counters, inbox, task group, context manager.

    Subclasses bind their sockets in ``start`` then call :meth:`_open_tasks`, and call
    :meth:`_close_tasks` from ``aclose``.
    """

    def __init__(self, node_id: NodeId, listen: Address, inbox_limit: int) -> None:
        self._node_id = node_id
        self._listen = listen
        self._bound: Address | None = None
        self._inbox_limit = inbox_limit
        self._inbox: Inbox | None = None
        self._counters = Counters()
        self._tg: TaskGroup | None = None
        self._closed = False

    @property
    def node_id(self) -> NodeId:
        """This node's id."""
        return self._node_id

    @property
    def listen_address(self) -> Address:
        """The bound ``(host, port)`` (the real port when 0 was asked); valid after ``start``."""
        if self._bound is None:
            raise TransportError("the transport is not bound yet; call start() first")
        return self._bound

    @property
    def stats(self) -> TransportStats:
        """A snapshot of the counters."""
        return self._counters.snapshot()

    async def receive(self) -> Message:
        """Wait for the next message from any peer.

        :raises anyio.EndOfStream: once the transport is closed.
        :raises ~replobj.errors.TransportError: if the transport was never started.
        """
        return await started(self._inbox).get()

    async def receive_batch(self, limit: int = 1024) -> list[Message]:
        """Wait for at least one message, then take up to ``limit`` already waiting.

        :raises anyio.EndOfStream: once the transport is closed.
        :raises ~replobj.errors.TransportError: if the transport was never started.
        """
        return await started(self._inbox).get_batch(limit)

    def _check_startable(self) -> None:
        if self._tg is not None or self._closed:
            raise TransportError(f"{self._node_id}: a transport can be started only once")

    async def _open_tasks(self, bound_port: int) -> TaskGroup:
        self._bound = (self._listen[0], bound_port)
        self._inbox = Inbox(self._inbox_limit)
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        return tg

    async def _close_tasks(self) -> None:
        try:
            if self._tg is not None:
                self._tg.cancel_scope.cancel()
                await self._tg.__aexit__(None, None, None)
        finally:
            if self._inbox is not None:
                self._inbox.close()

    def _fail(self, message: str) -> None:
        self._counters.last_error = message
        logger.warning("%s: %s", self._node_id, message)
