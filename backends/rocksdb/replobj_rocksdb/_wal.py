"""Telling a torn write-ahead-log tail from a damaged record that only looks like one.

RocksDB replays the WAL with ``tolerate_corrupted_tail_records``: a record in the
file's last (partial) 32 KiB block whose length runs past the end of the file is
taken for a write cut short by a crash and dropped silently, with everything after
it. A damaged length field looks the same. Before RocksDB opens the store,
:func:`check_wal_tails` looks at that block of every WAL file: if such a record is
followed by a record that passes its checksum, or if its own checksum matches a
shorter length, the "tail" held acknowledged data and the store refuses to open.

Record format (RocksDB ``db/log_format.h``): CRC-32C masked (u32 LE) of type and
payload, payload length (u16 LE), type (u8), payload; a record never crosses a block.
"""

from __future__ import annotations

import struct
from pathlib import Path

from replobj.errors import CorruptStorageError

from ._errors import RESTORE_FROM_PEERS

_BLOCK = 32768
_HEADER = struct.Struct("<IHB")
_TYPES = frozenset({1, 2, 3, 4})
"""Full, first, middle and last fragments (the only types a non-recycled WAL holds)."""
_MASK_DELTA = 0xA282EAD8


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def _extend(crc: int, data: bytes) -> int:
    """CRC-32C state (pre-inverted) extended by ``data``."""
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def _masked(crc_state: int) -> int:
    crc = crc_state ^ 0xFFFFFFFF
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def _valid_at(block: bytes, position: int) -> bool:
    stored, length, kind = _HEADER.unpack_from(block, position)
    end = position + _HEADER.size + length
    if kind not in _TYPES or end > len(block):
        return False
    return bool(_masked(_extend(0xFFFFFFFF, block[position + 6 : end])) == stored)


def _shorter_length_matches(block: bytes, position: int) -> bool:
    """Whether the record's checksum fits a payload shorter than its (damaged) length field,
    one that ends within the file."""
    stored, _, kind = _HEADER.unpack_from(block, position)
    if kind not in _TYPES:
        return False
    table, crc = _TABLE, _extend(0xFFFFFFFF, bytes([kind]))
    for byte in block[position + _HEADER.size :]:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        if _masked(crc) == stored:
            return True
    return False


def damaged_tail_offset(block: bytes) -> int | None:
    """The offset in ``block`` (a WAL file's last partial block) of a record that runs
    past the end of the file although it is not a torn tail, or ``None``."""
    position = 0
    while position + _HEADER.size <= len(block):
        _, length, kind = _HEADER.unpack_from(block, position)
        if kind == 0 and length == 0:
            return None
        if position + _HEADER.size + length > len(block):
            later = range(position + 1, len(block) - _HEADER.size + 1)
            if _shorter_length_matches(block, position) or any(
                _valid_at(block, other) for other in later
            ):
                return position
            return None
        position += _HEADER.size + length
    return None


def refuse_damaged_tails(path: Path) -> None:
    """Check the WAL files in ``path`` before RocksDB replays them.

    :raises ~replobj.errors.CorruptStorageError: if a record that looks like a torn
        tail is followed by intact data, naming the file and the offset.
    """
    damaged = check_wal_tails(path)
    if damaged is not None:
        name, offset = damaged
        raise CorruptStorageError(
            f"{path}: the write-ahead log {name} is damaged at byte {offset}: a record there "
            "runs past the end of the file, but intact data follows it, so it is not a torn "
            f"tail; the store cannot be trusted: {RESTORE_FROM_PEERS}"
        )


def check_wal_tails(path: Path) -> tuple[str, int] | None:
    """``(file name, offset)`` of the first WAL file in ``path`` whose apparent torn tail
    hides intact records (see the module docstring), or ``None``."""
    for wal in sorted(path.glob("*.log")):
        with open(wal, "rb") as log_file:
            size = log_file.seek(0, 2)
            start = size - size % _BLOCK
            log_file.seek(start)
            offset = damaged_tail_offset(log_file.read())
        if offset is not None:
            return wal.name, start + offset
    return None
