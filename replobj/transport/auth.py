"""Mutual proof of the cluster secret at connect time, then MAC-sealed records.

Handshake (the connecting side C, the listening side S, ``secret`` shared):

1. C → S: hello = ``MAGIC | wire version | Python major | minor | nonce (32) |
   len | C's id | len | the id C expects S to have | C's listening port (u16, 0 if
   unknown)``. S may learn C's address from it: the connection's source host and
   that port (so a node that joins without an address book can be answered).
2. S → C: S's hello (its own nonce and id, C's id as the expected peer), then
   ``HMAC(secret, "server" | transcript)`` where the transcript is both hellos.
3. C checks S's version and proof, then sends ``HMAC(secret, "client" | transcript)``
   (even when S's proof failed, so S can log the refusal).
4. S answers one status byte: accepted, bad proof or wrong node.

Both proofs cover both fresh nonces and both ids, so none can be replayed or reflected.
Afterwards every record C sends is ``len (u32) | payload | HMAC(session key, seq | len |
payload)`` with a session key derived from the secret and the transcript and an implicit
sequence number, so records cannot be forged, replayed, reordered or dropped unnoticed.
Nothing in a record is decoded before its MAC checks out.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import sys
from dataclasses import dataclass
from typing import Final

from anyio.abc import ByteStream
from anyio.streams.buffered import BufferedByteReceiveStream

from replobj.errors import (
    AuthenticationError,
    FrameTooLargeError,
    ProtocolError,
    TransportError,
    VersionMismatchError,
)
from replobj.raft.types import NodeId

from .codec import WIRE_VERSION

__all__ = [
    "INSECURE_LOOPBACK_SECRET",
    "MAC_BYTES",
    "RECORD_OVERHEAD",
    "Hello",
    "RecordOpener",
    "RecordSealer",
    "WrongPeerError",
    "client_handshake",
    "server_handshake",
]

MAGIC: Final = b"RPLOBJ"
NONCE_BYTES: Final = 32
MAC_BYTES: Final = 32
RECORD_OVERHEAD: Final = 4 + MAC_BYTES
"""Bytes a sealed record adds to its payload."""

INSECURE_LOOPBACK_SECRET: Final = b"replobj-no-secret-loopback-only"
"""The key used when no secret is configured (allowed on loopback addresses only)."""

_FIXED = struct.Struct(f">{len(MAGIC)}sBBB{NONCE_BYTES}sB")
_STATUS_OK: Final = b"\x01"
_STATUS_BAD_PROOF: Final = b"\x00"
_STATUS_WRONG_NODE: Final = b"\x02"
_LEN = struct.Struct(">I")
_PORT = struct.Struct(">H")
_SEQ = struct.Struct(">Q")


class WrongPeerError(TransportError):
    """The address answered as another node than the one expected; fix the address book."""


@dataclass(frozen=True, slots=True)
class Hello:
    """One side's opening message; see the module docstring for the layout."""

    node_id: NodeId
    peer_id: NodeId
    nonce: bytes
    wire_version: int = WIRE_VERSION
    python: tuple[int, int] = (sys.version_info.major, sys.version_info.minor)
    listen_port: int = 0

    def encode(self) -> bytes:
        """The bytes sent on the wire (ids are UTF-8, at most 255 bytes each)."""
        own, peer = _name_bytes(self.node_id), _name_bytes(self.peer_id)
        fixed = _FIXED.pack(MAGIC, self.wire_version, *self.python, self.nonce, len(own))
        return fixed + own + bytes([len(peer)]) + peer + _PORT.pack(self.listen_port)

    def check_compatible(self, where: str) -> None:
        """Refuse a peer that speaks another wire version or Python minor version.

        :raises ~replobj.errors.VersionMismatchError: naming both sides' versions.
        """
        ours = (WIRE_VERSION, (sys.version_info.major, sys.version_info.minor))
        if (self.wire_version, self.python) != ours:
            raise VersionMismatchError(
                f"{where} ({self.node_id!r}) speaks wire v{self.wire_version} on Python "
                f"{self.python[0]}.{self.python[1]}; this node speaks wire v{ours[0]} on "
                f"Python {ours[1][0]}.{ours[1][1]}; run the same replobj and Python everywhere"
            )


def _name_bytes(name: NodeId) -> bytes:
    raw = name.encode()
    if len(raw) > 255:
        raise ValueError(f"node id {name[:40]!r}... is longer than 255 UTF-8 bytes")
    return raw


async def _read_hello(reader: BufferedByteReceiveStream) -> tuple[Hello, bytes]:
    fixed = await reader.receive_exactly(_FIXED.size)
    magic, version, major, minor, nonce, own_len = _FIXED.unpack(fixed)
    if magic != MAGIC:
        raise ProtocolError(f"not a replobj peer (first bytes {fixed[:8]!r})")
    own = await reader.receive_exactly(own_len)
    peer_len = await reader.receive_exactly(1)
    peer = await reader.receive_exactly(peer_len[0])
    port = await reader.receive_exactly(_PORT.size)
    try:
        hello = Hello(
            own.decode(), peer.decode(), nonce, version, (major, minor), _PORT.unpack(port)[0]
        )
    except UnicodeDecodeError as exc:
        raise ProtocolError("node id in hello is not UTF-8") from exc
    return hello, fixed + own + peer_len + peer + port


def _mac(key: bytes, label: bytes, data: bytes) -> bytes:
    return hmac.digest(key, label + data, hashlib.sha256)


def _session_key(secret: bytes, transcript: bytes) -> bytes:
    return _mac(secret, b"replobj-session-v1", transcript)


async def client_handshake(
    stream: ByteStream,
    reader: BufferedByteReceiveStream,
    *,
    secret: bytes,
    node_id: NodeId,
    peer_id: NodeId,
    listen_port: int = 0,
) -> bytes:
    """Prove the secret to a listener and check its proof; return the session key.

    :raises ~replobj.errors.VersionMismatchError: if the peer runs another version.
    :raises ~replobj.errors.AuthenticationError: if either proof fails (wrong secret).
    :raises WrongPeerError: if the listener is not ``peer_id``.
    :raises ~replobj.errors.ProtocolError: if the listener is not a replobj node.
    """
    ours = Hello(node_id, peer_id, os.urandom(NONCE_BYTES), listen_port=listen_port).encode()
    await stream.send(ours)
    theirs, raw = await _read_hello(reader)
    theirs.check_compatible(f"peer {peer_id!r}")
    proof = await reader.receive_exactly(MAC_BYTES)
    transcript = ours + raw
    await stream.send(_mac(secret, b"replobj-client-proof", transcript))
    if not hmac.compare_digest(proof, _mac(secret, b"replobj-server-proof", transcript)):
        raise AuthenticationError(
            f"peer {peer_id!r} could not prove the cluster secret (or ours is wrong); "
            "check that every node is given the same secret"
        )
    if theirs.node_id != peer_id:
        raise WrongPeerError(f"address of {peer_id!r} answers as {theirs.node_id!r}")
    status = await reader.receive_exactly(1)
    if status == _STATUS_BAD_PROOF:
        raise AuthenticationError(f"peer {peer_id!r} refused our proof of the cluster secret")
    if status != _STATUS_OK:
        raise WrongPeerError(f"peer {peer_id!r} says it is not the node we meant to reach")
    return _session_key(secret, transcript)


async def server_handshake(
    stream: ByteStream, reader: BufferedByteReceiveStream, *, secret: bytes, node_id: NodeId
) -> tuple[Hello, bytes]:
    """Answer a connecting peer: exchange proofs; return its hello and the session key.

    :raises ~replobj.errors.VersionMismatchError: if the peer runs another version
        (after telling it ours, so it can report the mismatch too).
    :raises ~replobj.errors.AuthenticationError: if the peer's proof is wrong.
    :raises WrongPeerError: if the peer meant to reach another node.
    :raises ~replobj.errors.ProtocolError: if the peer is not a replobj node.
    """
    theirs, raw = await _read_hello(reader)
    ours = Hello(node_id, theirs.node_id, os.urandom(NONCE_BYTES)).encode()
    transcript = raw + ours
    await stream.send(ours + _mac(secret, b"replobj-server-proof", transcript))
    theirs.check_compatible(f"peer at the other end claiming {theirs.node_id!r}")
    proof = await reader.receive_exactly(MAC_BYTES)
    if not hmac.compare_digest(proof, _mac(secret, b"replobj-client-proof", transcript)):
        await stream.send(_STATUS_BAD_PROOF)
        raise AuthenticationError(
            f"peer claiming to be {theirs.node_id!r} failed to prove the cluster secret"
        )
    if theirs.peer_id != node_id:
        await stream.send(_STATUS_WRONG_NODE)
        raise WrongPeerError(f"peer {theirs.node_id!r} meant to reach {theirs.peer_id!r}")
    await stream.send(_STATUS_OK)
    return theirs, _session_key(secret, transcript)


class RecordSealer:
    """Seals outgoing records with the session key and the next sequence number."""

    __slots__ = ("_key", "_seq")

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._seq = 0

    def seal(self, payload: bytes) -> bytes:
        """Return ``len | payload | mac``, ready to write."""
        head = _LEN.pack(len(payload))
        mac = hmac.digest(self._key, _SEQ.pack(self._seq) + head + payload, hashlib.sha256)
        self._seq += 1
        return head + payload + mac


class RecordOpener:
    """Reads and verifies sealed records in order; checks the length before reading the body."""

    __slots__ = ("_key", "_max_payload", "_seq")

    def __init__(self, key: bytes, max_payload: int) -> None:
        self._key = key
        self._max_payload = max_payload
        self._seq = 0

    async def read(self, reader: BufferedByteReceiveStream) -> bytes:
        """Return the next record's verified payload.

        :raises ~replobj.errors.FrameTooLargeError: if the record announces too many bytes.
        :raises ~replobj.errors.ProtocolError: if its MAC does not check out.
        :raises anyio.IncompleteRead: if the stream ends mid-record.
        """
        head = await reader.receive_exactly(4)
        (length,) = _LEN.unpack(head)
        if length > self._max_payload:
            raise FrameTooLargeError(
                f"peer announced a {length}-byte record, above the {self._max_payload}-byte limit"
            )
        sealed = await reader.receive_exactly(length + MAC_BYTES)
        payload, mac = sealed[:length], sealed[length:]
        expected = hmac.digest(self._key, _SEQ.pack(self._seq) + head + payload, hashlib.sha256)
        if not hmac.compare_digest(mac, expected):
            raise ProtocolError(f"record {self._seq} failed authentication; closing the link")
        self._seq += 1
        return payload
