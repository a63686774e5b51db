"""Byte layout of keys and values (documented in ``docs/storage.md``).

Every value starts with a CRC-32 (zlib, big-endian) of its key followed by the rest
of the value, so a flipped bit, or a value moved under another key, is detected.
Index keys are big-endian so RocksDB's bytewise order is index order.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass

from replobj.raft.types import ClusterConfig, Entry, EntryKind, HardState, SnapshotMeta

STORE_NAME = "replobj-rocksdb"
"""The ``store`` field of the format marker."""
FORMAT_VERSION = 1
"""Bumped on any incompatible change of this layout."""

LOG_CF = "log"
STATE_CF = "state"
SNAPSHOT_CF = "snapshot"
COLUMN_FAMILIES = (LOG_CF, STATE_CF, SNAPSHOT_CF)

FORMAT_KEY = b"format"
HARD_STATE_KEY = b"hard_state"
SNAPSHOT_KEY = b"snapshot"
IDENTITY_KEY = b"identity"

MAX_CHUNK_VALUE = 1 << 20
"""Snapshot bytes are stored in values of at most this size."""

KEY_END = b"\xff" * 17
"""Sorts after every key of the log and snapshot column families."""

_U64 = struct.Struct(">Q")
_ENTRY_HEADER = struct.Struct(">IQB")
_CRC = struct.Struct(">I")


class ChecksumMismatch(Exception):
    """A value failed its CRC; the caller turns it into a ``CorruptStorageError``."""


def index_key(index: int) -> bytes:
    """The log key of ``index`` (8 bytes, big-endian)."""
    return _U64.pack(index)


def key_index(key: bytes) -> int:
    """Inverse of :func:`index_key`."""
    return int(_U64.unpack(key)[0])


def chunk_key(generation: int, offset: int) -> bytes:
    """The key of the snapshot bytes of ``generation`` starting at ``offset`` (16 bytes)."""
    return _U64.pack(generation) + _U64.pack(offset)


def chunk_key_parts(key: bytes) -> tuple[int, int]:
    """Inverse of :func:`chunk_key`: ``(generation, offset)``."""
    return int(_U64.unpack_from(key, 0)[0]), int(_U64.unpack_from(key, 8)[0])


def seal(key: bytes, body: bytes) -> bytes:
    """``body`` prefixed with the CRC of ``key + body``."""
    return _CRC.pack(zlib.crc32(body, zlib.crc32(key))) + body


def unseal(key: bytes, value: bytes) -> bytes:
    """The body of a sealed value; raises :class:`ChecksumMismatch` if the CRC is wrong."""
    if len(value) < 4:
        raise ChecksumMismatch("value shorter than its checksum")
    body = value[4:]
    if _CRC.unpack_from(value)[0] != zlib.crc32(body, zlib.crc32(key)):
        raise ChecksumMismatch("checksum mismatch")
    return body


def encode_entry(entry: Entry) -> bytes:
    """Log value: CRC, term (u64), kind (u8), payload."""
    key = index_key(entry.index)
    header = _ENTRY_HEADER.pack(0, entry.term, entry.kind)[4:]
    crc = zlib.crc32(entry.payload, zlib.crc32(header, zlib.crc32(key)))
    return _CRC.pack(crc) + header + entry.payload


def decode_entry(key: bytes, value: bytes) -> Entry:
    """Inverse of :func:`encode_entry`; raises :class:`ChecksumMismatch` on any damage."""
    body = unseal(key, value)
    if len(body) < _ENTRY_HEADER.size - 4:
        raise ChecksumMismatch("entry shorter than its header")
    _, term, kind = _ENTRY_HEADER.unpack_from(value)
    try:
        return Entry(term, key_index(key), EntryKind(kind), body[_ENTRY_HEADER.size - 4 :])
    except ValueError as exc:
        raise ChecksumMismatch(str(exc)) from exc


def format_marker() -> bytes:
    """The marker stored in the directory and in the state column family."""
    return json.dumps({"store": STORE_NAME, "format_version": FORMAT_VERSION}).encode()


def parse_format_marker(data: bytes) -> tuple[str, int]:
    """``(store, format_version)`` of a marker; raises ``ValueError`` if it is not one."""
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise ValueError("format marker is not a JSON object")
    store, version = doc.get("store"), doc.get("format_version")
    if not isinstance(store, str) or not isinstance(version, int):
        raise ValueError("format marker lacks store/format_version")
    return store, version


def encode_hard_state(hard_state: HardState) -> bytes:
    """Sealed JSON of the term and vote."""
    body = {
        "term": hard_state.term,
        "voted_for": hard_state.voted_for,
        "catch_up_to": hard_state.catch_up_to,
    }
    return seal(HARD_STATE_KEY, json.dumps(body).encode())


def decode_hard_state(value: bytes) -> HardState:
    """Inverse of :func:`encode_hard_state`."""
    doc = _json_object(unseal(HARD_STATE_KEY, value))
    voted_for = doc.get("voted_for")
    catch_up_to = _int(doc, "catch_up_to") if "catch_up_to" in doc else 0
    return HardState(_int(doc, "term"), None if voted_for is None else str(voted_for), catch_up_to)


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """The current-snapshot pointer: metadata, where its bytes live and how many there are."""

    meta: SnapshotMeta
    generation: int
    size: int


def encode_snapshot_record(record: SnapshotRecord) -> bytes:
    """Sealed JSON of the current-snapshot pointer."""
    body = {
        "last_index": record.meta.last_index,
        "last_term": record.meta.last_term,
        "config": record.meta.config.encode().decode(),
        "generation": record.generation,
        "size": record.size,
    }
    return seal(SNAPSHOT_KEY, json.dumps(body).encode())


def decode_snapshot_record(value: bytes) -> SnapshotRecord:
    """Inverse of :func:`encode_snapshot_record`."""
    doc = _json_object(unseal(SNAPSHOT_KEY, value))
    try:
        config = ClusterConfig.decode(str(doc["config"]).encode())
    except (KeyError, ValueError) as exc:
        raise ChecksumMismatch(f"bad configuration in snapshot record: {exc}") from exc
    meta = SnapshotMeta(
        _int(doc, "last_index"),
        _int(doc, "last_term"),
        config,
    )
    return SnapshotRecord(meta, _int(doc, "generation"), _int(doc, "size"))


def _json_object(body: bytes) -> dict[str, object]:
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise ChecksumMismatch(f"undecodable record: {exc}") from exc
    if not isinstance(doc, dict):
        raise ChecksumMismatch("record is not a JSON object")
    return doc


def _int(doc: dict[str, object], key: str) -> int:
    value = doc.get(key)
    if not isinstance(value, int):
        raise ChecksumMismatch(f"record field {key!r} is not an integer")
    return value


def as_bytes(value: object) -> bytes:
    """A key or value read in raw mode, typed (rocksdict's stubs say "any key type")."""
    if not isinstance(value, bytes):
        raise TypeError(f"expected bytes from a raw-mode RocksDB, got {type(value).__name__}")
    return value


def encode_identity(member_id: str, cluster_id: str) -> bytes:
    """The sealed identity record: which member and cluster the store belongs to."""
    body = {"member_id": member_id, "cluster_id": cluster_id}
    return seal(IDENTITY_KEY, json.dumps(body).encode())


def decode_identity(value: bytes) -> tuple[str, str]:
    """``(member_id, cluster_id)`` from a record made by :func:`encode_identity`.

    :raises ValueError: if the record fails its checksum or is malformed.
    """
    doc = _json_object(unseal(IDENTITY_KEY, value))
    member, cluster = doc.get("member_id"), doc.get("cluster_id")
    if not isinstance(member, str) or not isinstance(cluster, str):
        raise ValueError("identity record lacks member_id/cluster_id strings")
    return member, cluster
