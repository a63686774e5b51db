"""UDP transport on anyio: one authenticated Raft message per datagram.

For low-latency LANs. Each datagram is ``header | frame | HMAC-SHA256`` where the
header names the wire and Python versions, the sender, the addressee, the sender's
cluster id, the sender's epoch (its start time in nanoseconds) and a per-epoch counter;
the MAC (keyed from the cluster key) covers everything before it and is checked before
anything else is decoded. A datagram from a known, different cluster is dropped. Each
receiver keeps, per sender, the newest epoch and a 64-wide window of counters, so a
captured datagram replayed later is refused. A message whose frame does not fit
:attr:`UdpTransport.max_message_bytes` is dropped and counted: size Raft's
``max_append_bytes`` and ``snapshot_chunk_bytes`` below it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import socket
import struct
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import anyio
from anyio.abc import SocketAttribute, UDPSocket
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from replobj.errors import ClusterMismatchError, FrameTooLargeError, ProtocolError, TransportError
from replobj.raft.messages import Message
from replobj.raft.types import NodeId

from .auth import MAC_BYTES
from .base import Address, Inbox, TaskedTransport, describe, logger, started
from .codec import WIRE_VERSION, decode_frame, encode_frame
from .identity import MAX_CLUSTER_ID_BYTES, check_cluster, cluster_id_bytes

__all__ = ["UDP_OVERHEAD_BYTES", "ReplayWindow", "UdpTransport"]

_MAGIC: Final = b"RU"
_FIXED = struct.Struct(">2sBBBQQ")
_PYTHON: Final = (sys.version_info.major, sys.version_info.minor)
UDP_OVERHEAD_BYTES: Final = _FIXED.size + 2 * 256 + 1 + MAX_CLUSTER_ID_BYTES + MAC_BYTES
"""The most bytes a datagram adds around its frame (node ids of up to 255 bytes, a cluster id
of up to 64)."""
_WINDOW: Final = 64


@functools.lru_cache(maxsize=1024)
def _numeric(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(slots=True)
class ReplayWindow:
    """Accepts each (epoch, counter) of one sender at most once; refuses older epochs.

    Counters more than 64 behind the newest seen are refused as well (too old to tell).
    """

    epoch: int = -1
    highest: int = -1
    seen: int = 0

    def accept(self, epoch: int, counter: int) -> bool:
        """Record ``(epoch, counter)`` and say whether it is new."""
        if epoch > self.epoch:
            self.epoch, self.highest, self.seen = epoch, counter, 1
            return True
        if epoch < self.epoch:
            return False
        if counter > self.highest:
            shift = counter - self.highest
            self.seen = ((self.seen << shift) | 1) & ((1 << _WINDOW) - 1)
            self.highest = counter
            return True
        bit = 1 << (self.highest - counter)
        if self.highest - counter >= _WINDOW or self.seen & bit:
            return False
        self.seen |= bit
        return True


class UdpTransport(TaskedTransport):
    """Authenticated UDP transport; see the module docstring.

    :param node_id: this node's id (at most 255 UTF-8 bytes).
    :param listen: where to bind, e.g. ``("10.0.0.5", 7400)``; port 0 picks a free port.
    :param peers: the initial address book.
    :param secret: the cluster secret (at least 16 bytes, the same on every node).
    :param cluster_id: returns this node's cluster id (``""`` while unknown); datagrams
        from a node that knows another one are dropped.
    :param max_datagram_bytes: the largest datagram sent or accepted (65507 fits IPv4;
        use about 1400 to avoid IP fragmentation on an Ethernet LAN).
    :param queue_limit: datagrams queued for sending before new ones are dropped.
    :param inbox_limit: received messages buffered before new ones are dropped.
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
        max_datagram_bytes: int = 65507,
        queue_limit: int = 8192,
        inbox_limit: int = 8192,
    ) -> None:
        book = dict(peers or {})
        if max_datagram_bytes <= UDP_OVERHEAD_BYTES + 64:
            raise ValueError(f"max_datagram_bytes must exceed {UDP_OVERHEAD_BYTES + 64}")
        super().__init__(node_id, listen, inbox_limit, secret=secret, cluster_id=cluster_id)
        self._own = node_id.encode()
        if len(self._own) > 255:
            raise ValueError("node ids are limited to 255 UTF-8 bytes")
        self._peers = book
        self._udp_key = hmac.digest(self._key, b"replobj-udp-v2", "sha256")
        self._max_datagram = max_datagram_bytes
        self._queue_limit = queue_limit
        self._epoch = time.time_ns()
        self._counter = 0
        self._windows: dict[NodeId, ReplayWindow] = {}
        self._learned: dict[NodeId, Address] = {}
        self._socket: UDPSocket | None = None
        self._raw: socket.socket | None = None
        self._outbox: MemoryObjectSendStream[tuple[bytes, Address]] | None = None
        self._outbox_out: MemoryObjectReceiveStream[tuple[bytes, Address]] | None = None

    @property
    def max_message_bytes(self) -> int:
        """Largest encoded frame that fits one datagram with the worst-case header."""
        return self._max_datagram - UDP_OVERHEAD_BYTES

    async def start(self) -> None:
        """Bind the socket and start the sender and receiver tasks.

        :raises ~replobj.errors.TransportError: if the address cannot be bound, or if
            the transport was already started.
        """
        self._check_startable()
        host, port = self._listen
        raw: socket.socket | None = None
        try:
            family, *_, where = (await anyio.getaddrinfo(host, port, type=socket.SOCK_DGRAM))[0]
            raw = socket.socket(family, socket.SOCK_DGRAM)
            raw.setblocking(False)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            raw.bind(where)
        except OSError as exc:
            if raw is not None:
                raw.close()
            raise TransportError(f"{self._node_id}: cannot bind UDP {host}:{port}: {exc}") from exc
        sock = await UDPSocket.from_socket(raw)
        self._raw = raw
        self._socket = sock
        self._outbox, self._outbox_out = anyio.create_memory_object_stream[tuple[bytes, Address]](
            self._queue_limit
        )
        tg = await self._open_tasks(sock.extra(SocketAttribute.local_port))
        tg.start_soon(self._send_loop, sock, self._outbox_out)
        tg.start_soon(self._receive_loop, sock, started(self._inbox))

    async def aclose(self) -> None:
        """Stop both tasks and close the socket; queued datagrams are discarded."""
        if self._closed:
            return
        self._closed = True
        await self._close_tasks()
        for stream in (self._outbox, self._outbox_out):
            if stream is not None:
                stream.close()
        self._raw = None
        if self._socket is not None:
            await self._socket.aclose()

    def update_peers(self, peers: Mapping[NodeId, Address]) -> None:
        """Replace the address book (addresses learned from authenticated datagrams are kept
        for peers it does not name).
        """
        book = dict(peers)
        for peer, address in self._learned.items():
            book.setdefault(peer, address)
        self._peers = book

    def send(self, to: NodeId, message: Message) -> None:
        """Seal ``message`` into one datagram and queue it; drop and count it if impossible."""
        address = self._peers.get(to)
        if address is None or self._outbox is None or self._closed:
            self._counters.dropped += 1
            return
        try:
            frame = encode_frame(message, self.max_message_bytes - 4)
            datagram = self.seal(to, frame)
        except (FrameTooLargeError, ValueError) as exc:
            self._counters.dropped += 1
            self._counters.last_error = describe(exc)
            logger.warning("%s: dropped a message to %r: %s", self._node_id, to, exc)
            return
        if (
            self._raw is not None
            and _numeric(address[0])
            and self._outbox.statistics().current_buffer_used == 0
        ):
            try:
                self._raw.sendto(datagram, address)
            except OSError:
                pass
            else:
                self._counters.sent += 1
                return
        try:
            self._outbox.send_nowait((datagram, address))
        except anyio.WouldBlock:
            self._counters.dropped += 1

    def seal(self, to: NodeId, frame: bytes) -> bytes:
        """Wrap an encoded frame into the next authenticated datagram for ``to``."""
        addressee = to.encode()
        if len(addressee) > 255:
            raise ValueError("node ids are limited to 255 UTF-8 bytes")
        cluster = cluster_id_bytes(self._cluster.current())
        self._counter += 1
        head = _FIXED.pack(_MAGIC, WIRE_VERSION, *_PYTHON, self._epoch, self._counter)
        body = b"".join(
            (head, bytes([len(self._own)]), self._own, bytes([len(addressee)]), addressee,
             bytes([len(cluster)]), cluster, frame)
        )  # fmt: skip
        return body + hmac.digest(self._udp_key, body, hashlib.sha256)

    def unseal(self, datagram: bytes) -> Message:
        """Authenticate, replay-check and decode one datagram addressed to this node.

        :raises ~replobj.errors.ProtocolError: naming why the datagram was refused.
        :raises ~replobj.errors.ClusterMismatchError: if the sender is in another cluster.
        """
        if len(datagram) < _FIXED.size + 2 + MAC_BYTES or len(datagram) > self._max_datagram:
            raise ProtocolError(f"datagram of {len(datagram)} bytes is not a replobj datagram")
        body, mac = datagram[:-MAC_BYTES], datagram[-MAC_BYTES:]
        if not hmac.compare_digest(mac, hmac.digest(self._udp_key, body, hashlib.sha256)):
            raise ProtocolError("datagram failed authentication (wrong secret or not replobj)")
        magic, version, major, minor, epoch, counter = _FIXED.unpack_from(body)
        if magic != _MAGIC or (version, (major, minor)) != (WIRE_VERSION, _PYTHON):
            raise ProtocolError(
                f"datagram speaks wire v{version} on Python {major}.{minor}; this node speaks "
                f"wire v{WIRE_VERSION} on Python {_PYTHON[0]}.{_PYTHON[1]}"
            )
        pos = _FIXED.size
        try:
            sender_end = pos + 1 + body[pos]
            to_end = sender_end + 1 + body[sender_end]
            cluster_end = to_end + 1 + body[to_end]
            sender = body[pos + 1 : sender_end].decode()
            addressee = body[sender_end + 1 : to_end].decode()
            cluster = body[to_end + 1 : cluster_end].decode()
        except (UnicodeDecodeError, IndexError) as exc:
            raise ProtocolError("malformed datagram header") from exc
        if addressee != self._node_id:
            raise ProtocolError(f"datagram from {sender!r} is addressed to {addressee!r}")
        check_cluster(ours=self._cluster.current(), theirs=cluster, peer=sender, node=self._node_id)
        try:
            message = decode_frame(body[cluster_end:], self.max_message_bytes)
        except ProtocolError:
            self._counters.rejected_messages += 1
            raise
        if message.sender != sender:
            raise ProtocolError(f"{sender!r} sent a message as {message.sender!r}")
        if not self._windows.setdefault(sender, ReplayWindow()).accept(epoch, counter):
            raise ProtocolError(f"replayed or stale datagram from {sender!r} ({epoch}, {counter})")
        return message

    async def _send_loop(
        self, sock: UDPSocket, outbox: MemoryObjectReceiveStream[tuple[bytes, Address]]
    ) -> None:
        async for datagram, (host, port) in outbox:
            try:
                await sock.sendto(datagram, host, port)
            except OSError as exc:
                self._counters.dropped += 1
                self._counters.last_error = describe(exc)
                logger.info("%s: UDP send to %s:%s failed: %s", self._node_id, host, port, exc)
            else:
                self._counters.sent += 1

    async def _receive_loop(self, sock: UDPSocket, inbox: Inbox) -> None:
        while True:
            try:
                datagram, source = await sock.receive()
            except OSError as exc:
                logger.info("%s: UDP receive failed: %s", self._node_id, exc)
                continue
            self._deliver(datagram, source, inbox)
            raw = self._raw
            for _ in range(256 if raw is not None else 0):
                assert raw is not None
                try:
                    datagram, source = raw.recvfrom(self._max_datagram)
                except (BlockingIOError, InterruptedError, OSError, ValueError):
                    break
                self._deliver(datagram, source, inbox)

    def _deliver(self, datagram: bytes, source: object, inbox: Inbox) -> None:
        try:
            message = self.unseal(datagram)
        except ClusterMismatchError as exc:
            self._counters.rejected += 1
            self._report_mismatch(str(source), exc)
            return
        except ProtocolError as exc:
            self._counters.rejected += 1
            if self._limiter.allow("datagram"):
                logger.warning("%s: refused datagram from %s: %s", self._node_id, source, exc)
            return
        if message.sender not in self._peers and isinstance(source, tuple) and source:
            address = (str(source[0]), int(source[1]))
            self._peers[message.sender] = self._learned[message.sender] = address
            logger.info("%s: learned the address of %r: %s", self._node_id, message.sender, source)
        receiver = inbox.receiver
        if receiver is not None:
            self._counters.received += 1
            receiver([message])
        elif inbox.put_nowait(message):
            self._counters.received += 1
        else:
            self._counters.rejected += 1
