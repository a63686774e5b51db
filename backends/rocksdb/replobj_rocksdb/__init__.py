"""replobj's RocksDB storage backend (distribution ``replobj-rocksdb``).

Registered under the entry-point group ``replobj.storage`` as ``rocksdb``, so
``replobj.storage.open_storage(data_dir)`` finds it without importing it directly.
"""

from __future__ import annotations

from ._codec import FORMAT_VERSION
from ._snapshot import RocksDBSnapshotWriter
from .store import RocksDBStorage, SyncMode

__all__ = ["FORMAT_VERSION", "RocksDBSnapshotWriter", "RocksDBStorage", "SyncMode"]
