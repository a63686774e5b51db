"""The transport contract the runtime programs against, and the pieces all transports share.

A transport moves :data:`~replobj.raft.messages.Message` values between nodes by
:data:`~replobj.raft.types.NodeId`. Sending never waits for a peer: each peer has a
bounded queue and a message that does not fit is dropped and counted (Raft
retransmits). Received messages come out of one bounded stream, in arrival order, or
are handed to a receiver callback in the task that read them (see
:meth:`Transport.set_receiver`).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, TypeAlias, runtime_checkable

import anyio
from anyio.abc import TaskGroup

from replobj.errors import ClusterMismatchError, ProtocolError, TransportError
from replobj.raft.messages import Message
from replobj.raft.types import NodeId
from replobj.secret import check_secret, cluster_key

from .identity import ClusterIds

__all__ = [
    "Address",
    "Counters",
    "Inbox",
    "LogLimiter",
    "Receiver",
    "StartAndClose",
    "TaskedTransport",
    "Transport",
    "TransportStats",
    "describe",
    "is_loopback",
    "logger",
    "started",
]

Address: TypeAlias = tuple[str, int]
"""A ``(host, port)`` pair; the host is an IP address or a name."""

Receiver: TypeAlias = Callable[[list[Message]], None]
"""Takes the messages of one read, in arrival order, synchronously (it must not block)."""

logger = logging.getLogger("replobj.transport")
"""Where every transport logs refused peers, failed connections and dropped frames."""


@dataclass(frozen=True, slots=True)
class TransportStats:
    """Counters since the transport was created.

    ``dropped`` counts outgoing messages discarded (queue full, message too large,
    peer unknown); ``rejected`` counts incoming frames, datagrams or connections
    refused (bad proof, malformed, replayed, too large); ``rejected_messages`` counts
    messages from authenticated peers that the codec refused (a value out of range, an
    empty or too long node id): each is dropped, the link stays. ``last_error`` describes
    the most recent failure, e.g. an :class:`~replobj.errors.AuthenticationError`
    met while connecting.
    """

    sent: int = 0
    dropped: int = 0
    received: int = 0
    rejected: int = 0
    last_error: str | None = None
    rejected_messages: int = 0


@dataclass(slots=True)
class Counters:
    """The mutable counters behind :class:`TransportStats`."""

    sent: int = 0
    dropped: int = 0
    received: int = 0
    rejected: int = 0
    last_error: str | None = None
    rejected_messages: int = 0

    def snapshot(self) -> TransportStats:
        """An immutable copy."""
        return TransportStats(
            self.sent,
            self.dropped,
            self.received,
            self.rejected,
            self.last_error,
            self.rejected_messages,
        )


class Inbox:
    """The bounded stream of received messages behind ``receive`` and ``receive_batch``."""

    __slots__ = ("_in", "_out", "receiver")

    def __init__(self, limit: int) -> None:
        self._in, self._out = anyio.create_memory_object_stream[Message](limit)
        self.receiver: Receiver | None = None
        """If set, the reading tasks hand messages to it instead of queuing them."""

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

    def set_receiver(self, receiver: Receiver | None) -> bool:
        """Hand received messages to ``receiver`` in the task that read them, if supported.

        Saves the hand-over to a reader task (a wake-up of the event loop per message).
        ``None`` goes back to queuing for :meth:`receive`.

        :returns: whether this transport calls ``receiver``; ``False``: keep calling
            :meth:`receive_batch` (e.g. the in-memory transport, whose delivery runs in
            the sender's task, where a receiver could re-enter the sending node).
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


class LogLimiter:
    """Say whether to log the n-th occurrence of a kind of refusal: the first ten, then
    every thousandth, so a hostile or broken peer cannot flood the log."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def allow(self, kind: str) -> int:
        """Count one more ``kind``; return the count if it should be logged, else 0."""
        count = self._counts.get(kind, 0) + 1
        self._counts[kind] = count
        return count if count <= 10 or count % 1000 == 0 else 0


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

    def __init__(
        self,
        node_id: NodeId,
        listen: Address,
        inbox_limit: int,
        *,
        secret: object,
        cluster_id: Callable[[], str] | None,
    ) -> None:
        self._key = cluster_key(check_secret(secret))
        self._cluster = ClusterIds(cluster_id)
        self._limiter = LogLimiter()
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

    def set_receiver(self, receiver: Receiver | None) -> bool:
        """Hand received messages to ``receiver`` in the reading task (see :class:`Transport`).

        :raises ~replobj.errors.TransportError: if the transport was never started.
        """
        started(self._inbox).receiver = receiver
        return True

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

    def _refuse_message(self, peer: NodeId, exc: ProtocolError) -> None:
        """Count and (rate-limited) log a message an authenticated peer sent out of range."""
        self._counters.rejected_messages += 1
        count = self._limiter.allow(f"message:{peer}")
        if count:
            logger.warning(
                "%s: refused a message from %r (%d so far): %s", self._node_id, peer, count, exc
            )

    def _report_mismatch(self, peer: NodeId, exc: ClusterMismatchError) -> None:
        """Record a refused peer of another cluster; log it once per peer and pair of ids."""
        self._counters.last_error = describe(exc)
        if self._cluster.first_report(peer, exc):
            logger.warning("%s: %s", self._node_id, describe(exc))
