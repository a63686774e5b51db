"""TCP transport on anyio: one authenticated, persistent connection per peer and direction.

Each peer gets a bounded queue of encoded frames and a writer task that connects
(retrying with jittered exponential backoff), proves the cluster secret
(:mod:`replobj.transport.auth`) and then writes everything queued as one sealed
record per write. On asyncio, while nothing is queued and the socket takes bytes, a
frame is written directly by ``send`` (no hand-over to the writer task). Incoming
connections must complete the handshake before any of their bytes are decoded; a
failure is logged and counted and the listener keeps serving everyone else.
"""

from __future__ import annotations

import contextlib
import random
import ssl
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import anyio
from anyio.abc import ByteStream, SocketAttribute
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from replobj.errors import ClusterMismatchError, FrameTooLargeError, ProtocolError, TransportError
from replobj.raft.messages import Message
from replobj.raft.types import NodeId

from . import tls
from .admission import PendingHandshakes
from .auth import RecordOpener, RecordSealer, client_handshake, server_handshake
from .base import Address, TaskedTransport, describe, logger, started
from .codec import DEFAULT_MAX_FRAME_BYTES, PREFIX_BYTES, decode_each, encode_frame
from .record_protocol import RecordProtocol, take_over

__all__ = ["TcpTransport"]

_LINK_ERRORS = (
    OSError,
    TimeoutError,
    ssl.SSLError,
    ProtocolError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    anyio.IncompleteRead,
)


@dataclass(slots=True)
class _Link:
    peer: NodeId
    address: Address
    queue: MemoryObjectSendStream[bytes]
    frames: MemoryObjectReceiveStream[bytes]
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    direct: Callable[[bytes], bool] | None = None
    """Writes a frame straight to the connected socket if it takes it now (asyncio)."""
    busy: bool = False
    """Frames are queued or being written by the link's task: new ones queue behind them."""
    unreachable: bool = False
    """The last connection attempt failed and was logged: log further failures quietly."""


def _direct_writer(stream: ByteStream, sealer: RecordSealer) -> Callable[[bytes], bool] | None:
    """A function writing a sealed frame into an asyncio socket's transport, or ``None``.

    Only for anyio's plain asyncio socket stream (not TLS, not trio): its transport
    sends at once what the kernel accepts, and buffers the rest until the stream's
    ``send`` next waits for room. The function declines (``False``) while a previous
    write is still buffered, so the caller queues the frame for the link's task.
    """
    if type(stream).__module__ != "anyio._backends._asyncio":
        return None
    transport = getattr(stream, "_transport", None)
    protocol = getattr(stream, "_protocol", None)
    if transport is None or protocol is None or not hasattr(protocol, "write_event"):
        return None

    def write(frame: bytes) -> bool:
        if not protocol.write_event.is_set() or protocol.exception is not None:
            return False
        if transport.is_closing():
            return False
        transport.write(sealer.seal(frame))
        return True

    return write


class TcpTransport(TaskedTransport):
    """Authenticated TCP transport (see the module docstring and ``docs/wire.md``).

    :param node_id: this node's id.
    :param listen: where to listen, e.g. ``("10.0.0.5", 7400)``; port 0 picks a free
        port (read it back from :attr:`listen_address`).
    :param peers: the initial address book.
    :param secret: the cluster secret (the same on every node, at least 16 bytes; make
        one with :func:`replobj.new_secret`). Required: there is no unauthenticated mode.
    :param cluster_id: returns this node's cluster id (``""`` while unknown); a peer
        whose known cluster id differs is refused on both sides.
    :param server_ssl: wrap incoming connections in TLS with this context.
    :param client_ssl: wrap outgoing connections in TLS with this context.
    :param queue_limit: frames queued per peer before new ones are dropped.
    :param inbox_limit: received messages buffered before readers are slowed down.
    :param max_frame_bytes: the largest frame sent or accepted.
    :param coalesce: write every queued frame in one record (``False`` is for benchmarks).
    :param max_batch_bytes: stop coalescing a record beyond this many bytes.
    :param handshake_timeout: seconds allowed for connect plus handshake.
    :param max_pending_handshakes: incoming connections allowed to be mid-handshake at
        once; more are closed at once, so a flood cannot exhaust the listener.
    :param max_pending_per_source: of those, how many may come from one source address,
        so a flood from one host cannot lock out peers on other hosts.
    :param backoff: first and largest reconnect delay in seconds (jittered, doubling).
    :param seed: seed of the jitter generator, for reproducible tests.
    :raises ~replobj.errors.WeakSecretError: if ``secret`` is missing or too short.
    """

    def __init__(
        self,
        node_id: NodeId,
        listen: Address,
        peers: Mapping[NodeId, Address] | None = None,
        *,
        secret: str | bytes | None = None,
        cluster_id: Callable[[], str] | None = None,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        queue_limit: int = 4096,
        inbox_limit: int = 8192,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        coalesce: bool = True,
        max_batch_bytes: int = 256 << 10,
        handshake_timeout: float = 5.0,
        max_pending_handshakes: int = 64,
        max_pending_per_source: int = 8,
        backoff: tuple[float, float] = (0.05, 2.0),
        seed: int | None = None,
    ) -> None:
        super().__init__(node_id, listen, inbox_limit, secret=secret, cluster_id=cluster_id)
        self._peers = dict(peers or {})
        self._learned: dict[NodeId, Address] = {}
        self._server_ssl = server_ssl
        self._client_ssl = client_ssl
        self._queue_limit = queue_limit
        self._max_frame_bytes = max_frame_bytes
        self._max_record = max_frame_bytes + PREFIX_BYTES
        self._coalesce = coalesce
        self._max_batch_bytes = max_batch_bytes
        self._handshake_timeout = handshake_timeout
        self._pending = PendingHandshakes(max_pending_handshakes, max_pending_per_source)
        self._backoff = backoff
        self._rng = random.Random(seed)
        self._links: dict[NodeId, _Link] = {}

    @property
    def max_message_bytes(self) -> int:
        """Largest frame this transport sends or accepts."""
        return self._max_frame_bytes

    async def start(self) -> None:
        """Bind the listening socket and start accepting connections.

        :raises ~replobj.errors.TransportError: if the address cannot be bound, or if
            the transport was already started.
        """
        self._check_startable()
        host, port = self._listen
        try:
            listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        except OSError as exc:
            raise TransportError(f"{self._node_id}: cannot listen on {host}:{port}: {exc}") from exc
        tg = await self._open_tasks(listener.extra(SocketAttribute.local_port))
        tg.start_soon(self._accept_loop, listener)

    async def aclose(self) -> None:
        """Close every connection and stop all tasks; queued messages are discarded."""
        if self._closed:
            return
        self._closed = True
        for link in self._links.values():
            link.queue.close()
            link.frames.close()
        self._links.clear()
        await self._close_tasks()

    def send(self, to: NodeId, message: Message) -> None:
        """Queue ``message`` for ``to``; drop and count it if it cannot be queued."""
        address = self._peers.get(to)
        if address is None or self._tg is None or self._closed:
            self._counters.dropped += 1
            return
        try:
            frame = encode_frame(message, self._max_frame_bytes)
        except FrameTooLargeError as exc:
            self._fail(str(exc))
            self._counters.dropped += 1
            return
        link = self._links.get(to)
        if link is None:
            link = self._open_link(to, address)
        direct = link.direct
        if direct is not None and not link.busy and direct(frame):
            self._counters.sent += 1
            return
        try:
            link.queue.send_nowait(frame)
        except anyio.WouldBlock:
            self._counters.dropped += 1
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            # The link's task ended for good: forget the link (the next send opens a new
            # one); a send never raises into the node (Raft tolerates the lost message).
            if self._links.get(to) is link:
                del self._links[to]
            link.queue.close()
            self._counters.dropped += 1
        else:
            link.busy = True

    def update_peers(self, peers: Mapping[NodeId, Address]) -> None:
        """Replace the address book; links to removed or moved peers are closed.

        Addresses learned from authenticated incoming connections are kept for peers the
        new book does not name.
        """
        book = dict(peers)
        for peer, address in self._learned.items():
            book.setdefault(peer, address)
        for peer, link in list(self._links.items()):
            if book.get(peer) != link.address:
                link.queue.close()
                link.frames.close()
                link.scope.cancel()
                del self._links[peer]
        self._peers = book

    def _open_link(self, peer: NodeId, address: Address) -> _Link:
        assert self._tg is not None
        queue, frames = anyio.create_memory_object_stream[bytes](self._queue_limit)
        link = _Link(peer, address, queue, frames)
        self._links[peer] = link
        self._tg.start_soon(self._run_link, link)
        return link

    async def _run_link(self, link: _Link) -> None:
        first, largest = self._backoff
        delay = first
        with link.scope, link.frames:
            while True:
                try:
                    stream, reader, key = await self._connect(link)
                except ClusterMismatchError as exc:
                    self._report_mismatch(link.peer, exc)
                    await anyio.sleep(largest * self._rng.uniform(0.5, 1.0))
                    continue
                except (*_LINK_ERRORS, TransportError) as exc:
                    self._unreachable(link, exc)
                    if isinstance(exc, TransportError):
                        delay = largest
                    await anyio.sleep(delay * self._rng.uniform(0.5, 1.0))
                    delay = min(delay * 2, largest)
                    continue
                delay = first
                if link.unreachable:
                    link.unreachable = False
                    logger.info("%s: link to %r is up", self._node_id, link.peer)
                try:
                    if await self._carry(link, stream, reader, key):
                        return
                except Exception as exc:
                    self._counters.last_error = describe(exc)
                    logger.exception("%s: link to %r failed unexpectedly", self._node_id, link.peer)
                    await anyio.sleep(largest)

    def _unreachable(self, link: _Link, exc: BaseException) -> None:
        """Record a failed connection attempt: a warning the first time, then quietly.

        A peer that is not up yet (or is down) is retried with backoff for as long as it
        stays so; one warning says so, and the next comes only after the link was up again.
        """
        message = f"cannot reach {link.peer!r} at {link.address}: {describe(exc)}"
        if link.unreachable:
            self._counters.last_error = message
            logger.debug("%s: %s (still)", self._node_id, message)
            return
        link.unreachable = True
        self._fail(f"{message}; retrying quietly until it answers")

    async def _carry(
        self, link: _Link, stream: ByteStream, reader: BufferedByteReceiveStream, key: bytes
    ) -> bool:
        """Write queued frames on an established link; True once the queue is closed."""
        finished = False
        sealer = RecordSealer(key)
        async with stream, anyio.create_task_group() as tg:
            tg.start_soon(self._watch_closed, reader, tg.cancel_scope)
            link.direct = _direct_writer(stream, sealer)
            try:
                finished = await self._pump(link, stream, sealer)
            finally:
                link.direct = None
            tg.cancel_scope.cancel()
        return finished

    async def _connect(self, link: _Link) -> tuple[ByteStream, BufferedByteReceiveStream, bytes]:
        host, port = link.address
        with anyio.fail_after(self._handshake_timeout):
            stream = await tls.connect(host, port, self._client_ssl)
            try:
                reader = BufferedByteReceiveStream(stream)
                key = await client_handshake(
                    stream,
                    reader,
                    key=self._key,
                    node_id=self._node_id,
                    peer_id=link.peer,
                    listen_port=self._bound[1] if self._bound else 0,
                    cluster_id=self._cluster.current(),
                )
            except BaseException:
                await anyio.aclose_forcefully(stream)
                raise
        return stream, reader, key

    @staticmethod
    async def _watch_closed(reader: BufferedByteReceiveStream, scope: anyio.CancelScope) -> None:
        with contextlib.suppress(*_LINK_ERRORS):
            await reader.receive()
        scope.cancel()

    async def _pump(self, link: _Link, stream: ByteStream, sealer: RecordSealer) -> bool:
        """Write queued frames until the queue closes (True) or the link fails (False)."""
        try:
            await self._write_batches(link, stream, sealer)
        except anyio.EndOfStream:
            return True
        except _LINK_ERRORS as exc:
            logger.info("%s: link to %r lost: %r", self._node_id, link.peer, exc)
        return False

    async def _write_batches(self, link: _Link, stream: ByteStream, sealer: RecordSealer) -> None:
        frames = link.frames
        pending: bytes | None = None
        while True:
            if pending is not None:
                frame, pending = pending, None
            else:
                try:
                    frame = frames.receive_nowait()
                except anyio.WouldBlock:
                    link.busy = False  # nothing queued: senders may write directly
                    frame = await frames.receive()
            batch, size = [frame], len(frame)
            while self._coalesce and size < self._max_batch_bytes:
                try:
                    frame = frames.receive_nowait()
                except anyio.WouldBlock:
                    break
                if size + len(frame) > self._max_record:
                    pending = frame
                    break
                batch.append(frame)
                size += len(frame)
            await stream.send(sealer.seal(b"".join(batch)))
            self._counters.sent += len(batch)

    async def _accept_loop(self, listener: anyio.abc.Listener[anyio.abc.SocketStream]) -> None:
        async with listener:
            await listener.serve(self._serve_connection_safely, self._tg)

    async def _serve_connection_safely(self, raw: anyio.abc.SocketStream) -> None:
        try:
            await self._serve_connection(raw)
        except Exception:
            self._counters.rejected += 1
            logger.exception("%s: unexpected failure serving a connection", self._node_id)
        finally:
            await anyio.aclose_forcefully(raw)

    async def _serve_connection(self, raw: anyio.abc.SocketStream) -> None:
        remote = raw.extra(SocketAttribute.remote_address, "?")
        source = str(remote[0]) if isinstance(remote, tuple) and remote else str(remote)
        refusal = self._pending.admit(source)
        if refusal is not None:
            self._counters.rejected += 1
            count = self._limiter.allow(f"admission:{source}")
            if count:
                logger.warning("%s: %s; refused %s (%d)", self._node_id, refusal, remote, count)
            return
        try:
            with anyio.fail_after(self._handshake_timeout):
                stream = raw if self._server_ssl is None else await tls.accept_tls(
                    raw, self._server_ssl
                )  # fmt: skip
                reader = BufferedByteReceiveStream(stream)
                hello, key = await server_handshake(
                    stream, reader, key=self._key, node_id=self._node_id,
                    cluster_id=self._cluster.current(),
                )  # fmt: skip
        except ClusterMismatchError as exc:
            self._counters.rejected += 1
            self._report_mismatch(source, exc)
            return
        except (*_LINK_ERRORS, TransportError) as exc:
            self._counters.rejected += 1
            logger.warning("%s: refused connection from %s: %r", self._node_id, remote, exc)
            return
        finally:
            self._pending.release(source)
        self._learn_address(hello.node_id, remote, hello.listen_port)
        if not await self._read_in_protocol(hello.node_id, remote, stream, reader, key):
            opener = RecordOpener(key, self._max_record)
            await self._read_records(hello.node_id, remote, reader, opener)

    def _learn_address(self, peer: NodeId, remote: object, port: int) -> None:
        """Remember where an authenticated peer missing from the address book listens."""
        if peer in self._peers or not port or not isinstance(remote, tuple) or not remote:
            return
        self._peers[peer] = self._learned[peer] = (str(remote[0]), port)
        logger.info("%s: learned the address of %r: %s:%d", self._node_id, peer, remote[0], port)

    def _decode_record(self, peer: NodeId, payload: bytes) -> list[Message]:
        """The messages of one verified record; refused ones are counted and logged."""
        batch: list[Message] = []
        for msg in decode_each(payload, self._max_frame_bytes):
            if isinstance(msg, ProtocolError):
                self._refuse_message(peer, msg)
                continue
            if msg.sender != peer:
                self._counters.rejected += 1
                logger.warning("%s: %r sent a message as %r", self._node_id, peer, msg.sender)
                continue
            batch.append(msg)
        self._counters.received += len(batch)
        return batch

    async def _read_in_protocol(
        self,
        peer: NodeId,
        remote: object,
        stream: ByteStream,
        reader: BufferedByteReceiveStream,
        key: bytes,
    ) -> bool:
        """Read the link in the event loop's callback (asyncio); ``False``: not possible.

        Messages go to the inbox's receiver at once; without one, into the inbox, and
        when it is full, reading stops and this task waits for room (backpressure on the
        peer, as the generic reader does).
        """
        inbox = started(self._inbox)
        backlog: deque[Message] = deque()

        def deliver(payload: bytes) -> None:
            batch = self._decode_record(peer, payload)
            if backlog:
                backlog.extend(batch)
                return
            receiver = inbox.receiver
            if receiver is not None:
                if batch:
                    receiver(batch)
                return
            for i, msg in enumerate(batch):
                if not inbox.put_nowait(msg):
                    backlog.extend(batch[i:])
                    protocol.stall()
                    return

        protocol = RecordProtocol(key, self._max_record, deliver)
        if not take_over(stream, reader, protocol):
            return False
        while True:
            await protocol.wake.wait()
            protocol.wake.clear()
            while backlog:
                receiver = inbox.receiver
                if receiver is not None:
                    batch = list(backlog)
                    backlog.clear()
                    receiver(batch)
                else:
                    await inbox.put(backlog[0])
                    backlog.popleft()
            if protocol.is_closed:
                break
            protocol.resume()
        if protocol.error is not None:
            self._counters.rejected += 1
            logger.warning(
                "%s: closing link from %r at %s: %s", self._node_id, peer, remote, protocol.error
            )
        return True

    async def _read_records(
        self, peer: NodeId, remote: object, reader: BufferedByteReceiveStream, opener: RecordOpener
    ) -> None:
        inbox = started(self._inbox)
        try:
            while True:
                payload = await opener.read(reader)
                batch = self._decode_record(peer, payload)
                receiver = inbox.receiver
                if receiver is not None:
                    if batch:
                        receiver(batch)
                    continue
                for msg in batch:
                    if not inbox.put_nowait(msg):
                        await inbox.put(msg)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
            return
        except ProtocolError as exc:
            self._counters.rejected += 1
            logger.warning("%s: closing link from %r at %s: %s", self._node_id, peer, remote, exc)
        except anyio.ClosedResourceError:
            return
