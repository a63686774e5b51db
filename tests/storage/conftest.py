"""Fixtures shared by the storage tests: every conformance test runs against every store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from storage_helpers import StoreHarness

from replobj.storage import MemoryStorage
from replobj_rocksdb import RocksDBStorage


@pytest.fixture(params=["memory", "rocksdb"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreHarness]:
    """A fresh store of each implementation (the RocksDB one in a temporary directory)."""
    if request.param == "memory":
        made = StoreHarness("memory", MemoryStorage)
    else:
        data_dir = tmp_path / "store"
        print(f"rocksdb data dir: {data_dir}")
        made = StoreHarness("rocksdb", lambda: RocksDBStorage(data_dir))
    yield made
    made.close()
