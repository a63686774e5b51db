"""RocksDB-specific behaviour: checksums, refusing foreign directories, staging cleanup."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from rocksdict import Options, Rdict
from storage_helpers import make_entries

from replobj.errors import (
    CorruptStorageError,
    IncompatibleStorageError,
    NotAStoreError,
    StorageError,
)
from replobj.raft.types import ClusterConfig, HardState, SnapshotMeta
from replobj.storage import StorageBackendMissingError, WriteBatch, load_backend, open_storage
from replobj_rocksdb import FORMAT_VERSION, RocksDBStorage
from replobj_rocksdb._codec import HARD_STATE_KEY, decode_hard_state, seal

CONFIG = ClusterConfig(voters=frozenset({"a"}))
NEWER_MARKER = {"store": "replobj-rocksdb", "format_version": FORMAT_VERSION + 1}


@contextmanager
def raw_column_family(path: Path, name: str) -> Iterator[Rdict]:
    """Open one column family of a closed store directly with rocksdict (to tamper with it)."""
    cfs = {cf: Options(raw_mode=True) for cf in ("log", "state", "snapshot")}
    db = Rdict(str(path), Options(raw_mode=True), column_families=cfs)
    family = db.get_column_family(name)
    try:
        yield family
    finally:
        family.close()
        db.close()


def flip_byte(family: Rdict, key: object, position: int) -> None:
    assert isinstance(key, bytes)
    stored = family[key]
    assert isinstance(stored, bytes)
    value = bytearray(stored)
    value[position] ^= 0x01
    family[key] = bytes(value)


def fingerprint(path: Path) -> dict[str, tuple[int, int]]:
    """Name -> (size, mtime) of every file under ``path``: proves nothing was written."""
    return {
        str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(path.rglob("*"))
    }


def filled_store(path: Path) -> None:
    with RocksDBStorage(path) as store:
        store.write(WriteBatch().append(make_entries(1, 5, term=1)).set_hard_state(HardState(1)))
        store.sync()


@pytest.mark.parametrize("position", [0, 6, 13, -1], ids=["crc", "term", "payload0", "last"])
def test_flipped_bit_in_a_log_entry_is_detected(tmp_path: Path, position: int) -> None:
    filled_store(tmp_path)
    with raw_column_family(tmp_path, "log") as log:
        flip_byte(log, (3).to_bytes(8, "big"), position)
    with RocksDBStorage(tmp_path) as store:
        for read in (store.load, lambda: store.entries(3, 4), lambda: store.term_at(3)):
            with pytest.raises(CorruptStorageError, match="log entry 3") as caught:
                read()
            assert str(tmp_path) in str(caught.value)
        assert store.entries(1, 3) == make_entries(1, 2, term=1)


def test_entry_moved_under_another_index_is_detected(tmp_path: Path) -> None:
    filled_store(tmp_path)
    with raw_column_family(tmp_path, "log") as log:
        log[(4).to_bytes(8, "big")] = log[(2).to_bytes(8, "big")]
    with RocksDBStorage(tmp_path) as store, pytest.raises(CorruptStorageError, match="entry 4"):
        store.load()


def test_flipped_bit_in_hard_state_and_snapshot_is_detected(tmp_path: Path) -> None:
    with RocksDBStorage(tmp_path) as store:
        writer = store.begin_snapshot(SnapshotMeta(0, 0, CONFIG))
        writer.write_chunk(0, b"snapshot bytes")
        writer.commit()
    with raw_column_family(tmp_path, "snapshot") as chunks:
        flip_byte(chunks, next(chunks.keys()), 8)
    with RocksDBStorage(tmp_path) as store, pytest.raises(CorruptStorageError, match="chunk"):
        store.read_snapshot_chunk(0, 100)
    filled_store(tmp_path)
    with raw_column_family(tmp_path, "state") as state:
        flip_byte(state, b"hard_state", 6)
    with pytest.raises(CorruptStorageError, match="hard state"):
        RocksDBStorage(tmp_path)


def test_non_empty_directory_is_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("precious")
    before = fingerprint(tmp_path)
    with pytest.raises(NotAStoreError, match="not a replobj store"):
        RocksDBStorage(tmp_path)
    assert fingerprint(tmp_path) == before
    assert (tmp_path / "notes.txt").read_text() == "precious"


def test_foreign_rocksdb_is_not_a_store_and_is_not_touched(tmp_path: Path) -> None:
    foreign = Rdict(str(tmp_path / "db"))
    foreign["key"] = "value"
    foreign.close()
    before = fingerprint(tmp_path / "db")
    with pytest.raises(NotAStoreError):
        RocksDBStorage(tmp_path / "db")
    assert fingerprint(tmp_path / "db") == before


@pytest.mark.parametrize(
    ("marker", "error"),
    [
        (
            {"store": "replobj-rocksdb", "format_version": FORMAT_VERSION + 1},
            IncompatibleStorageError,
        ),
        ({"store": "something-else", "format_version": FORMAT_VERSION}, NotAStoreError),
        ("garbage", NotAStoreError),
    ],
    ids=["newer-version", "other-store", "garbage"],
)
def test_wrong_marker_is_refused_and_nothing_changes(
    tmp_path: Path, marker: object, error: type[Exception]
) -> None:
    filled_store(tmp_path)
    (tmp_path / "REPLOBJ_STORE").write_text(json.dumps(marker))
    before = fingerprint(tmp_path)
    with pytest.raises(error, match="nothing was changed"):
        RocksDBStorage(tmp_path)
    assert fingerprint(tmp_path) == before


def test_interrupted_creation_is_completed(tmp_path: Path) -> None:
    with RocksDBStorage(tmp_path / "a"):
        pass
    for name in os.listdir(tmp_path / "a"):
        if name != "REPLOBJ_STORE":
            os.remove(tmp_path / "a" / name)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "REPLOBJ_STORE.tmp").write_bytes(b"{")
    for path in (tmp_path / "a", tmp_path / "b"):
        with RocksDBStorage(path) as store:
            assert store.last_index() == 0


def test_second_open_of_the_same_directory_fails_clearly(tmp_path: Path) -> None:
    with RocksDBStorage(tmp_path), pytest.raises(StorageError, match="already open"):
        RocksDBStorage(tmp_path)


def test_staged_chunks_of_an_unfinished_snapshot_are_removed_on_open(tmp_path: Path) -> None:
    with RocksDBStorage(tmp_path) as store:
        writer = store.begin_snapshot(SnapshotMeta(0, 0, CONFIG))
        writer.write_chunk(0, b"current")
        writer.commit()
        store.begin_snapshot(SnapshotMeta(0, 0, CONFIG)).write_chunk(0, b"staged")
        store.sync()
    with raw_column_family(tmp_path, "snapshot") as chunks:
        assert len(list(chunks.keys())) == 2
    with RocksDBStorage(tmp_path) as store:
        assert store.read_snapshot_chunk(0, 100) == b"current"
    with raw_column_family(tmp_path, "snapshot") as chunks:
        assert len(list(chunks.keys())) == 1


def test_sync_write_mode_round_trips(tmp_path: Path) -> None:
    with RocksDBStorage(tmp_path, sync_mode="sync_write") as store:
        store.write(WriteBatch().append(make_entries(1, 3, term=2)))
    with RocksDBStorage(tmp_path) as store:
        assert store.load().entries == tuple(make_entries(1, 3, term=2))


def test_closed_store_refuses_use(tmp_path: Path) -> None:
    store = RocksDBStorage(tmp_path)
    store.close()
    store.close()
    with pytest.raises(StorageError, match="closed"):
        store.load()


def test_open_storage_finds_the_rocksdb_entry_point(tmp_path: Path) -> None:
    store = open_storage(tmp_path / "node")
    try:
        assert isinstance(store, RocksDBStorage)
    finally:
        store.close()
    with pytest.raises(StorageBackendMissingError, match=r"'lmdb'.*installed: \['rocksdb'\]"):
        load_backend("lmdb")


def test_hard_state_written_before_catch_up_to_existed_reads_as_zero() -> None:
    old_format = seal(HARD_STATE_KEY, json.dumps({"term": 4, "voted_for": "b"}).encode())
    assert decode_hard_state(old_format) == HardState(4, "b", catch_up_to=0)


class _CloseFails:
    """Wraps the store's database so that closing it fails, as after a failed fsync."""

    def __init__(self, db: object) -> None:
        self._inner = db

    def close(self) -> None:
        raise RuntimeError("IO error: While fsync: a simulated failure")

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def test_a_failed_close_still_lets_the_directory_be_reopened(tmp_path: Path) -> None:
    store = RocksDBStorage(tmp_path / "s")
    store.write(WriteBatch().append(make_entries(1, 3, term=1)))
    store.sync()
    store._db = _CloseFails(store._db)  # type: ignore[assignment]
    with pytest.raises(StorageError, match="close"):
        store.close()
    reopened = RocksDBStorage(tmp_path / "s")
    assert reopened.last_index() == 3
    reopened.close()
