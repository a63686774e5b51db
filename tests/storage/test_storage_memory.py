"""MemoryStorage's crash simulation: exactly the synced batches (plus a chosen prefix) survive."""

from __future__ import annotations

import pytest
from storage_helpers import make_entries

from replobj.errors import StorageError
from replobj.raft.types import ClusterConfig, HardState, SnapshotMeta
from replobj.storage import MemoryStorage, WriteBatch


def test_crash_loses_unsynced_batches() -> None:
    store = MemoryStorage()
    store.write(WriteBatch().append(make_entries(1, 3, term=1)).set_hard_state(HardState(1, "a")))
    store.sync()
    store.write(WriteBatch().append(make_entries(4, 2, term=2)).set_hard_state(HardState(2, "b")))
    assert store.unsynced_batches == 1
    survivor = store.crash()
    assert survivor.last_index() == 3
    assert survivor.hard_state() == HardState(1, "a")
    assert survivor.unsynced_batches == 0


def test_crash_can_keep_a_prefix_of_unsynced_batches() -> None:
    store = MemoryStorage()
    for index in range(1, 4):
        store.write(WriteBatch().append(make_entries(index, 1, term=1)))
    survivor = store.crash(keep_unsynced=2)
    assert survivor.load().entries == tuple(make_entries(1, 2, term=1))


def test_crashed_store_refuses_use() -> None:
    store = MemoryStorage()
    store.crash()
    with pytest.raises(StorageError, match="crash"):
        store.write(WriteBatch().append(make_entries(1, 1, term=1)))


def test_snapshot_commit_makes_earlier_batches_durable() -> None:
    store = MemoryStorage()
    store.write(WriteBatch().append(make_entries(1, 5, term=1)))
    writer = store.begin_snapshot(SnapshotMeta(2, 1, ClusterConfig(frozenset({"a"}))))
    writer.write_chunk(0, b"state")
    writer.commit()
    survivor = store.crash()
    assert survivor.load().entries == tuple(make_entries(3, 3, term=1))
    assert survivor.read_snapshot_chunk(0, 10) == b"state"


def test_crash_leaves_the_survivor_independent() -> None:
    store = MemoryStorage()
    store.write(WriteBatch().append(make_entries(1, 2, term=1)))
    store.sync()
    survivor = store.crash()
    survivor.write(WriteBatch().append(make_entries(2, 1, term=2)))
    again = survivor.crash()
    assert again.load().entries == tuple(make_entries(1, 2, term=1))
