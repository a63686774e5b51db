"""Child of the corruption tests: fill a store, say ``ready``, wait to be SIGKILLed.

Usage: ``python storage_corruption_child.py DATA_DIR``. Killed before any flush,
the store's contents live only in the write-ahead log.
"""

from __future__ import annotations

import sys

from corruption_helpers import fill

from replobj_rocksdb import RocksDBStorage


def main() -> None:
    store = RocksDBStorage(sys.argv[1])
    fill(store)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.read()


if __name__ == "__main__":
    main()
