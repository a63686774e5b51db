"""Mutual proof of the cluster key by a balanced PAKE at connect time, then MAC-sealed records.

Handshake (the connecting side C, the listening side S, both holding the cluster key
:func:`replobj.secret.cluster_key`):

1. C → S: hello_C = ``MAGIC | wire version | Python major | minor | nonce (32) |
   len | C's id | len | the id C expects S to have | len | C's cluster id |
   C's listening port (u16, 0 if unknown)``.
2. S → C: hello_S (its own nonce, id and cluster id, C's id as the expected peer),
   then Y, its share of the key exchange (:mod:`replobj.transport.pake`, generator
   derived from the key and both hellos).
3. C → S: X, its share, then ``confirm_C = HMAC(session, "client")``, where
   ``session = SHA-256(label | shared value | hello_C | hello_S | Y | X)``.
4. S checks ``confirm_C``. Wrong: it answers one byte, "bad proof", and nothing else.
   Right: it answers a status byte (accepted, wrong node, other cluster) and
   ``confirm_S = HMAC(session, "server")``, which C checks before believing anything.

Nothing either side sends before the other has proved itself depends on the key in a way
that can be checked offline: the shares are random group elements under every key, and C's
confirmation can be checked only by a party that chose its share with one guess of the key
(one online guess per connection). Afterwards every record C sends is ``len (u32) |
payload | HMAC(record key, seq | len | payload)`` with an implicit sequence number, so
records cannot be forged, replayed, reordered or dropped unnoticed. Nothing in a record is
decoded before its MAC checks out.
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
    ClusterMismatchError,
    FrameTooLargeError,
    ProtocolError,
    TransportError,
    VersionMismatchError,
)
from replobj.raft.types import MAX_NODE_ID_BYTES, NodeId

from .codec import WIRE_VERSION
from .identity import check_cluster, cluster_id_bytes
from .pake import SHARE_BYTES, Exchange

__all__ = [
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

_FIXED = struct.Struct(f">{len(MAGIC)}sBBB{NONCE_BYTES}sB")
_STATUS_OK: Final = b"\x01"
_STATUS_BAD_PROOF: Final = b"\x00"
_STATUS_WRONG_NODE: Final = b"\x02"
_STATUS_OTHER_CLUSTER: Final = b"\x03"
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
    cluster_id: str = ""

    def encode(self) -> bytes:
        """The bytes sent on the wire (ids are UTF-8, at most 255 bytes each)."""
        own, peer = _name_bytes(self.node_id), _name_bytes(self.peer_id)
        cluster = cluster_id_bytes(self.cluster_id)
        fixed = _FIXED.pack(MAGIC, self.wire_version, *self.python, self.nonce, len(own))
        return b"".join(
            (fixed, own, bytes([len(peer)]), peer, bytes([len(cluster)]), cluster,
             _PORT.pack(self.listen_port))
        )  # fmt: skip

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
    if len(raw) > MAX_NODE_ID_BYTES:
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
    cluster_len = await reader.receive_exactly(1)
    cluster = await reader.receive_exactly(cluster_len[0])
    port = await reader.receive_exactly(_PORT.size)
    try:
        hello = Hello(
            own.decode(), peer.decode(), nonce, version, (major, minor), _PORT.unpack(port)[0],
            cluster.decode(),
        )  # fmt: skip
    except UnicodeDecodeError as exc:
        raise ProtocolError("an id in the hello is not UTF-8") from exc
    if not hello.node_id:
        raise ProtocolError("the hello carries an empty node id")
    return hello, b"".join((fixed, own, peer_len, peer, cluster_len, cluster, port))


def _mac(key: bytes, label: bytes) -> bytes:
    return hmac.digest(key, label, hashlib.sha256)


def _session(shared: bytes, transcript: bytes) -> bytes:
    return hashlib.sha256(b"replobj-session-v2" + shared + transcript).digest()


def _record_key(session: bytes) -> bytes:
    return _mac(session, b"replobj-records-client-to-server")


async def client_handshake(
    stream: ByteStream,
    reader: BufferedByteReceiveStream,
    *,
    key: bytes,
    node_id: NodeId,
    peer_id: NodeId,
    listen_port: int = 0,
    cluster_id: str = "",
) -> bytes:
    """Run the key exchange with a listener, prove the key, check its proof; return the
    record key.

    :param key: the cluster key (:func:`replobj.secret.cluster_key`).
    :param cluster_id: this node's cluster id, ``""`` while unknown.
    :raises ~replobj.errors.VersionMismatchError: if the peer runs another version.
    :raises ~replobj.errors.AuthenticationError: if either proof fails (other key).
    :raises WrongPeerError: if the listener is not ``peer_id``.
    :raises ~replobj.errors.ClusterMismatchError: if the listener is in another cluster.
    :raises ~replobj.errors.ProtocolError: if the listener is not a replobj node.
    """
    ours = Hello(
        node_id, peer_id, os.urandom(NONCE_BYTES), listen_port=listen_port, cluster_id=cluster_id
    ).encode()
    await stream.send(ours)
    theirs, raw = await _read_hello(reader)
    theirs.check_compatible(f"peer {peer_id!r}")
    their_share = await reader.receive_exactly(SHARE_BYTES)
    exchange = Exchange(key, ours + raw)
    session = _session(exchange.finish(their_share), ours + raw + their_share + exchange.share)
    await stream.send(exchange.share + _mac(session, b"client"))
    status = await reader.receive_exactly(1)
    if status == _STATUS_BAD_PROOF:
        raise AuthenticationError(
            f"peer {peer_id!r} refused our proof of the cluster secret; check that every "
            "node is given the same secret"
        )
    if not hmac.compare_digest(await reader.receive_exactly(MAC_BYTES), _mac(session, b"server")):
        raise AuthenticationError(
            f"peer {peer_id!r} could not prove the cluster secret; check that every node is "
            "given the same secret"
        )
    if theirs.node_id != peer_id or status == _STATUS_WRONG_NODE:
        raise WrongPeerError(f"address of {peer_id!r} answers as {theirs.node_id!r}")
    check_cluster(ours=cluster_id, theirs=theirs.cluster_id, peer=peer_id, node=node_id)
    if status != _STATUS_OK:
        raise ClusterMismatchError(f"peer {peer_id!r} says it belongs to another cluster")
    return _record_key(session)


async def server_handshake(
    stream: ByteStream,
    reader: BufferedByteReceiveStream,
    *,
    key: bytes,
    node_id: NodeId,
    cluster_id: str = "",
) -> tuple[Hello, bytes]:
    """Answer a connecting peer: key exchange, check its proof, then prove ours; return its
    hello and the record key.

    :param key: the cluster key (:func:`replobj.secret.cluster_key`).
    :param cluster_id: this node's cluster id, ``""`` while unknown.
    :raises ~replobj.errors.VersionMismatchError: if the peer runs another version
        (after telling it ours, so it can report the mismatch too).
    :raises ~replobj.errors.AuthenticationError: if the peer's proof is wrong.
    :raises WrongPeerError: if the peer meant to reach another node.
    :raises ~replobj.errors.ClusterMismatchError: if the peer is in another cluster.
    :raises ~replobj.errors.ProtocolError: if the peer is not a replobj node.
    """
    theirs, raw = await _read_hello(reader)
    ours = Hello(node_id, theirs.node_id, os.urandom(NONCE_BYTES), cluster_id=cluster_id).encode()
    await stream.send(ours)
    theirs.check_compatible(f"peer at the other end claiming {theirs.node_id!r}")
    exchange = Exchange(key, raw + ours)
    await stream.send(exchange.share)
    their_share = await reader.receive_exactly(SHARE_BYTES)
    session = _session(exchange.finish(their_share), raw + ours + exchange.share + their_share)
    if not hmac.compare_digest(await reader.receive_exactly(MAC_BYTES), _mac(session, b"client")):
        await stream.send(_STATUS_BAD_PROOF)
        raise AuthenticationError(
            f"peer claiming to be {theirs.node_id!r} failed to prove the cluster secret"
        )
    status, refusal = _STATUS_OK, None
    try:
        if theirs.peer_id != node_id:
            status = _STATUS_WRONG_NODE
            raise WrongPeerError(f"peer {theirs.node_id!r} meant to reach {theirs.peer_id!r}")
        status = _STATUS_OTHER_CLUSTER
        check_cluster(ours=cluster_id, theirs=theirs.cluster_id, peer=theirs.node_id, node=node_id)
        status = _STATUS_OK
    except TransportError as exc:
        refusal = exc
    await stream.send(status + _mac(session, b"server"))
    if refusal is not None:
        raise refusal
    return theirs, _record_key(session)


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
