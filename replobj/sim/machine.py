"""The simulated application: a hash chain over every applied command payload.

Its digest after index ``i`` is a function of the committed commands up to ``i`` only,
so two nodes that applied the same prefix hold equal digests, and a snapshot carries
the digest it was taken at (the checker compares them).
"""

from __future__ import annotations

import hashlib
import struct

from replobj.raft import Entry, EntryKind, LogIndex

_HEADER = struct.Struct(">QQ16s")
_LENGTH = struct.Struct(">H")


class SnapshotFormatError(AssertionError):
    """Snapshot bytes that do not decode: the wrong bytes were staged or installed."""


class HashChainMachine:
    """Applies committed entries; keeps the command list and a running digest."""

    __slots__ = ("applied_index", "commands", "digest")

    def __init__(self) -> None:
        self.applied_index: LogIndex = 0
        self.digest: bytes = bytes(16)
        self.commands: list[bytes] = []

    def apply(self, entry: Entry) -> None:
        """Apply one committed entry (``NOOP``/``CONFIG`` only advance the index)."""
        self.applied_index = entry.index
        if entry.kind is EntryKind.COMMAND:
            self.commands.append(entry.payload)
            self.digest = hashlib.blake2b(self.digest + entry.payload, digest_size=16).digest()

    def serialise(self) -> bytes:
        """The snapshot bytes of the current state."""
        parts = [_HEADER.pack(self.applied_index, len(self.commands), self.digest)]
        for payload in self.commands:
            parts.append(_LENGTH.pack(len(payload)))
            parts.append(payload)
        return b"".join(parts)

    @classmethod
    def restore(cls, data: bytes) -> HashChainMachine:
        """Rebuild a machine from :meth:`serialise` output (empty bytes: the initial state).

        :raises SnapshotFormatError: if ``data`` is truncated or inconsistent.
        """
        machine = cls()
        if not data:
            return machine
        if len(data) < _HEADER.size:
            raise SnapshotFormatError(f"snapshot of {len(data)} bytes is shorter than its header")
        index, count, digest = _HEADER.unpack_from(data)
        offset = _HEADER.size
        check = bytes(16)
        for _ in range(count):
            if offset + _LENGTH.size > len(data):
                raise SnapshotFormatError("snapshot truncated inside its command list")
            (size,) = _LENGTH.unpack_from(data, offset)
            offset += _LENGTH.size
            payload = data[offset : offset + size]
            offset += size
            machine.commands.append(payload)
            check = hashlib.blake2b(check + payload, digest_size=16).digest()
        if offset != len(data) or check != digest:
            raise SnapshotFormatError("snapshot bytes do not match their recorded digest")
        machine.applied_index = index
        machine.digest = digest
        return machine
