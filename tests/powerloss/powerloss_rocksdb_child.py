"""Child of the RocksDB power-loss tests: the kill -9 crash child, optionally never syncing.

Usage: ``python powerloss_rocksdb_child.py DATA_DIR SEED SNAPSHOT_SHARE sync|nosync``.
With ``nosync`` every batch is written but :meth:`RocksDBStorage.sync` does nothing, so
``ack`` lines announce writes that are not durable (to prove the filesystem drops them).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "storage"))

import storage_crash_child

from replobj_rocksdb import RocksDBStorage


def never_sync(store: RocksDBStorage) -> None:
    """Stand-in for :meth:`RocksDBStorage.sync` that leaves batches in the page cache."""


if __name__ == "__main__":
    mode = sys.argv.pop(4)
    if mode == "nosync":
        RocksDBStorage.sync = never_sync  # type: ignore[method-assign, assignment]
    storage_crash_child.main()
