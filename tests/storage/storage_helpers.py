"""Small builders shared by the storage tests."""

from __future__ import annotations

import random
from collections.abc import Callable

from replobj.raft.types import Entry, EntryKind
from replobj.storage import MemoryStorage, Storage


def make_entries(first: int, count: int, term: int, tag: bytes = b"") -> list[Entry]:
    """``count`` COMMAND entries from ``first`` with payloads naming their index and term."""
    return [
        Entry(term, index, EntryKind.COMMAND, b"%s%d@%d" % (tag, index, term))
        for index in range(first, first + count)
    ]


def crash_payload(index: int, term: int) -> bytes:
    """The payload the crash-test child stores at ``index`` in ``term``."""
    return b"%d@%d;" % (index, term) * (1 + index % 23)


def crash_snapshot_bytes(index: int, term: int, size: int) -> bytes:
    """The snapshot bytes the crash-test child stores for a snapshot at ``index``/``term``."""
    return random.Random(index * 1_000_003 + term).randbytes(size)


class StoreHarness:
    """One store under test plus a way to restart it from what is durable."""

    def __init__(self, kind: str, open_store: Callable[[], Storage]) -> None:
        self.kind = kind
        self._open_store = open_store
        self.store = open_store()

    def restart(self) -> Storage:
        """Sync-less restart: a memory store keeps only what was synced (as after a crash);
        a RocksDB store is closed and reopened from its directory."""
        if isinstance(self.store, MemoryStorage):
            self.store = self.store.crash()
        else:
            self.store.close()
            self.store = self._open_store()
        return self.store

    def close(self) -> None:
        self.store.close()
