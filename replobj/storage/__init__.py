"""Durable storage of Raft state: the :class:`Storage` protocol, the in-memory store and backends.

The RocksDB store lives in the separate distribution ``replobj-rocksdb``; use
:func:`open_storage` to open it by name without importing it directly.
"""

from __future__ import annotations

from .memory import MemorySnapshotWriter, MemoryStorage
from .protocol import (
    AppendEntries,
    CompactLog,
    SnapshotWriter,
    Storage,
    StoreIdentity,
    WriteBatch,
    WriteOp,
)
from .registry import (
    ENTRY_POINT_GROUP,
    StorageBackendMissingError,
    load_backend,
    open_storage,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "AppendEntries",
    "CompactLog",
    "MemorySnapshotWriter",
    "MemoryStorage",
    "SnapshotWriter",
    "Storage",
    "StorageBackendMissingError",
    "StoreIdentity",
    "WriteBatch",
    "WriteOp",
    "load_backend",
    "open_storage",
]
