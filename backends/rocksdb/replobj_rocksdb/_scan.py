"""Iterating a column family without mistaking a damaged block for the end of the data.

rocksdict's ``keys()``/``items()`` stop quietly when RocksDB's iterator stops on an
error (a block failing its checksum), which makes a damaged log read as a short one.
Here every iteration that runs out checks the iterator's status, which raises
RocksDB's error (``Corruption: block checksum mismatch ... in .../000009.sst``).
"""

from __future__ import annotations

from collections.abc import Iterator

from rocksdict import Rdict, RdictIter, ReadOptions

from ._codec import as_bytes


def verifying_reads() -> ReadOptions:
    """Read options that check every block's checksum (RocksDB's default, made explicit)."""
    options = ReadOptions()
    options.set_verify_checksums(True)
    return options


def check_status(iterator: RdictIter) -> None:
    """Raise RocksDB's error if ``iterator`` stopped because of one (call once it is invalid)."""
    if not iterator.valid():
        iterator.status()


def scan(
    family: Rdict, *, start: bytes | None = None, backwards: bool = False
) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` pairs of ``family`` in key order (or reversed) from ``start``.

    :raises Exception: RocksDB's error, if reading stopped on one (see :func:`check_status`).
    """
    iterator = family.iter(verifying_reads())
    if start is None:
        iterator.seek_to_last() if backwards else iterator.seek_to_first()
    else:
        iterator.seek_for_prev(start) if backwards else iterator.seek(start)
    while iterator.valid():
        yield as_bytes(iterator.key()), as_bytes(iterator.value())
        iterator.prev() if backwards else iterator.next()
    check_status(iterator)


def first(family: Rdict, *, backwards: bool = False) -> bytes | None:
    """The first (or last) key of ``family``, or ``None`` if it is empty."""
    found = next(scan(family, backwards=backwards), None)
    return None if found is None else found[0]
