"""On asyncio, read an authenticated TCP link in the event loop's own callback.

After the handshake, :func:`take_over` swaps anyio's stream protocol of an incoming
connection for a :class:`RecordProtocol`, which opens each sealed record as its bytes
arrive (``data_received``) and hands the payload on at once. That saves, per record, the
reader task's wake-up and anyio's pause/resume of reading (two ``epoll_ctl`` calls)
for each ``receive``. Records are checked exactly as :class:`~replobj.transport.auth.
RecordOpener` does (same format: length, payload, HMAC over sequence, length and
payload). Trio and TLS links keep the generic reading task.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import struct
from collections.abc import Callable
from typing import Any

from anyio.abc import ByteStream
from anyio.streams.buffered import BufferedByteReceiveStream

from replobj.errors import FrameTooLargeError, ProtocolError

try:
    import sniffio
except ImportError:  # pragma: no cover - anyio then assumes asyncio, as wanted here
    sniffio = None  # type: ignore[assignment]

from .auth import MAC_BYTES

__all__ = ["RecordProtocol", "take_over"]

_LEN = struct.Struct(">I")
_SEQ = struct.Struct(">Q")


class RecordProtocol(asyncio.Protocol):
    """Opens sealed records as they arrive and passes each payload to ``deliver``.

    :param key: the session key of the link.
    :param max_payload: the largest record payload accepted.
    :param deliver: called with each verified payload, in order.
    """

    def __init__(self, key: bytes, max_payload: int, deliver: Callable[[bytes], None]) -> None:
        self._key = key
        self._max_payload = max_payload
        # A protocol callback runs outside any task: name the library for sniffio (so
        # anyio's current_time, Event, ... work in ``deliver``) even under asyncio.run.
        context = contextvars.copy_context()
        if sniffio is not None:
            context.run(sniffio.current_async_library_cvar.set, "asyncio")
        run = context.run

        def deliver_in_context(payload: bytes) -> None:
            run(deliver, payload)

        self._deliver = deliver_in_context
        self._seq = 0
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self.wake = asyncio.Event()
        """Set when the reading task has work: the connection ended, or :meth:`stall`."""
        self.is_closed = False
        """Whether the connection ended (by the peer, by an error, or by closing it)."""
        self.error: Exception | None = None
        """Why this side closed the link (a record failed its checks), if it did."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        try:
            while len(buffer) >= 4:
                (length,) = _LEN.unpack_from(buffer)
                if length > self._max_payload:
                    raise FrameTooLargeError(
                        f"peer announced a {length}-byte record, "
                        f"above the {self._max_payload}-byte limit"
                    )
                end = 4 + length + MAC_BYTES
                if len(buffer) < end:
                    return
                record = bytes(buffer[:end])
                del buffer[:end]
                payload = record[4 : 4 + length]
                expected = hmac.digest(
                    self._key, _SEQ.pack(self._seq) + record[: 4 + length], hashlib.sha256
                )
                if not hmac.compare_digest(record[4 + length :], expected):
                    raise ProtocolError(
                        f"record {self._seq} failed authentication; closing the link"
                    )
                self._seq += 1
                self._deliver(payload)
        except ProtocolError as exc:
            self.error = exc
            buffer.clear()
            if self._transport is not None:
                self._transport.abort()
            self._close()

    def eof_received(self) -> bool:
        self._close()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._close()

    def _close(self) -> None:
        self.is_closed = True
        self.wake.set()

    def stall(self) -> None:
        """Stop reading from the socket and wake the reading task (its consumer is full)."""
        if self._transport is not None and not self.is_closed:
            self._transport.pause_reading()
        self.wake.set()

    def resume(self) -> None:
        """Read from the socket again after :meth:`stall`."""
        if self._transport is not None and not self.is_closed:
            self._transport.resume_reading()


def take_over(
    stream: ByteStream, reader: BufferedByteReceiveStream, protocol: RecordProtocol
) -> bool:
    """Make ``protocol`` read ``stream`` from now on; ``False`` if it cannot (not asyncio).

    Bytes already read past the handshake (in ``reader`` or anyio's queue) are fed to
    ``protocol`` first, so nothing is lost or reordered; ``stream`` and ``reader`` must
    not be read afterwards.
    """
    if type(stream).__module__ != "anyio._backends._asyncio":
        return False
    transport: Any = getattr(stream, "_transport", None)
    old: Any = getattr(stream, "_protocol", None)
    if transport is None or old is None or not hasattr(old, "read_queue"):
        return False
    if old.is_at_eof or old.exception is not None or transport.is_closing():
        return False  # the generic reader sees the end and reports it
    try:
        transport.set_protocol(protocol)
    except (AttributeError, NotImplementedError):  # pragma: no cover - an exotic loop
        return False
    leftover = reader.buffer + b"".join(old.read_queue)
    old.read_queue.clear()
    protocol.connection_made(transport)
    if leftover:
        protocol.data_received(leftover)
    transport.resume_reading()
    return True
