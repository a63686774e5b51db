"""A store with known contents, the damage done to its files, and the check of what it reads.

Shared by ``test_storage_corruption.py`` and its child process
``storage_corruption_child.py`` (which fills a store and waits to be SIGKILLed, so the
write-ahead log still holds everything).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from replobj.errors import CorruptStorageError
from replobj.raft.types import ClusterConfig, Entry, EntryKind, HardState, SnapshotMeta
from replobj.storage import StoreIdentity, WriteBatch
from replobj_rocksdb import RocksDBStorage

CONFIG = ClusterConfig(voters=frozenset({"a", "b", "c"}))
SNAPSHOT = SnapshotMeta(10, 1, CONFIG)
SNAPSHOT_BYTES = random.Random(7).randbytes(40_000)
HARD_STATE = HardState(3, "b")
IDENTITY = StoreIdentity("a", "cluster-1")
BATCHES = 50
"""Entries 11..60 are written one synced batch each (entries 1..10 are compacted)."""


def entry(index: int) -> Entry:
    """The entry the filled store holds at ``index``."""
    term = 1 if index <= 20 else 2 if index <= 40 else 3
    return Entry(term, index, EntryKind.COMMAND, b"entry %d;" % index * (1 + index % 7))


def fill(store: RocksDBStorage) -> None:
    """Write the known contents, one synced batch at a time."""
    store.set_identity(IDENTITY)
    store.write(WriteBatch().append([entry(i) for i in range(1, 11)]).set_hard_state(HardState(1)))
    store.sync()
    writer = store.begin_snapshot(SNAPSHOT)
    writer.write_chunk(0, SNAPSHOT_BYTES[:25_000])
    writer.write_chunk(25_000, SNAPSHOT_BYTES[25_000:])
    writer.commit(keep_log=True)
    for index in range(11, 11 + BATCHES):
        batch = WriteBatch().append([entry(index)])
        if index == 11 + BATCHES - 1:
            batch.set_hard_state(HARD_STATE)
        store.write(batch)
        store.sync()


@dataclass(frozen=True)
class Contents:
    """Everything a store returns through its reads."""

    hard_state: HardState
    snapshot: SnapshotMeta
    snapshot_bytes: bytes
    entries: tuple[Entry, ...]
    identity: StoreIdentity | None


EXPECTED = Contents(
    HARD_STATE,
    SNAPSHOT,
    SNAPSHOT_BYTES,
    tuple(entry(i) for i in range(11, 11 + BATCHES)),
    IDENTITY,
)


def open_and_read(path: Path) -> Contents | CorruptStorageError:
    """Open and load the store; then read everything (no error allowed after ``load``).

    :returns: what the store holds, or the ``CorruptStorageError`` that opening or
        loading it raised.
    """
    try:
        store = RocksDBStorage(path)
    except CorruptStorageError as exc:
        return exc
    with store:
        try:
            restored = store.load()
        except CorruptStorageError as exc:
            return exc
        size = store.snapshot_size()
        return Contents(
            restored.hard_state,
            restored.snapshot,
            store.read_snapshot_chunk(0, size + 1),
            restored.entries,
            store.identity(),
        )


def flip(path: Path, rng: random.Random, *, start: int = 0, end: int | None = None) -> str:
    """Flip a seeded run of 1..16 bytes of ``path`` between ``start`` and ``end``.

    :returns: a description (file, offset, length) for failure messages.
    """
    data = bytearray(path.read_bytes())
    stop = len(data) if end is None else end
    length = rng.choice([1, 4, 16])
    offset = rng.randrange(start, max(start + 1, stop - length))
    for position in range(offset, min(offset + length, len(data))):
        data[position] ^= rng.randrange(1, 256)
    path.write_bytes(bytes(data))
    return f"{path.name} offset={offset} length={length} size={len(data)}"
