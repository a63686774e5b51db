"""The RocksDB store: one database, three column families (log, state, snapshot chunks).

Durability: :meth:`RocksDBStorage.write` writes one RocksDB ``WriteBatch`` to the
write-ahead log without syncing; :meth:`RocksDBStorage.sync` calls
``flush_wal(True)``, one fsync of the WAL that covers every batch written before it
and releases the GIL. RocksDB replays the WAL in order and drops a torn tail, so
batches survive atomically and as a prefix.

Damage is loud: WAL replay drops only a torn last record (``_wal`` tells a real one from
a damaged one), iterations check RocksDB's status (``_scan``), ``load()`` checks every value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from rocksdict import AccessType, ColumnFamily, DBRecoveryMode, Options, Rdict, WriteOptions
from rocksdict import WriteBatch as RocksBatch

from replobj.errors import CorruptStorageError, StorageError
from replobj.raft.options import RestoredState
from replobj.raft.types import Entry, HardState, LogIndex, SnapshotMeta, Term
from replobj.storage import AppendEntries, StoreIdentity, WriteBatch
from replobj.storage.validation import WRITER_FINISHED, check_batch, check_snapshot_meta

from . import _codec as codec
from ._directory import check_marker, prepare_directory
from ._errors import corrupt, rocksdb_errors
from ._scan import first, scan
from ._snapshot import RocksDBSnapshotWriter, chunk_pieces
from ._wal import refuse_damaged_tails

__all__ = ["RocksDBStorage", "SyncMode"]

SyncMode = Literal["flush_wal", "sync_write"]
"""How batches become durable: ``flush_wal`` (default) syncs in :meth:`RocksDBStorage.sync`;
``sync_write`` syncs inside every :meth:`RocksDBStorage.write` (holds the caller's thread)."""


def _raw_options() -> Options:
    """Raw bytes keys and values; after a crash, replay the WAL, dropping only an incomplete
    last record (``point_in_time`` would also drop everything after a damaged record)."""
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.create_missing_column_families(True)
    options.set_paranoid_checks(True)
    options.set_wal_recovery_mode(DBRecoveryMode.tolerate_corrupted_tail_records())
    options.set_keep_log_file_num(4)
    return options


class RocksDBStorage:
    """A :class:`~replobj.storage.Storage` in a RocksDB directory (layout in ``docs/storage.md``).

    Only one process may open a directory at a time (RocksDB holds a lock file).
    """

    def __init__(self, path: str | os.PathLike[str], *, sync_mode: SyncMode = "flush_wal") -> None:
        """Open the store in ``path``, creating it if the directory is missing or empty.

        :param path: the data directory.
        :param sync_mode: see :data:`SyncMode`; ``flush_wal`` unless benchmarking.
        :raises ~replobj.errors.NotAStoreError: if ``path`` holds something else.
        :raises ~replobj.errors.IncompatibleStorageError: if written by another format version.
        :raises ~replobj.errors.StorageError: if RocksDB cannot open it (e.g. already open).
        """
        self.path = Path(path)
        """The data directory."""
        prepare_directory(self.path)
        refuse_damaged_tails(self.path)
        self._sync_mode: SyncMode = sync_mode
        self._write_options = WriteOptions()
        self._write_options.sync = sync_mode == "sync_write"
        with rocksdb_errors(self.path, "open"):
            self._db = Rdict(
                str(self.path),
                _raw_options(),
                column_families={name: Options(raw_mode=True) for name in codec.COLUMN_FAMILIES},
                access_type=AccessType.read_write(),
            )
        self._closed = False
        try:
            self._attach()
        except BaseException:
            self._release()
            raise

    def _attach(self) -> None:
        with rocksdb_errors(self.path, "open"):
            self._log = self._db.get_column_family(codec.LOG_CF)
            self._state = self._db.get_column_family(codec.STATE_CF)
            self._chunks = self._db.get_column_family(codec.SNAPSHOT_CF)
            self._handles = {
                name: self._db.get_column_family_handle(name) for name in codec.COLUMN_FAMILIES
            }
            marker = self._state.get(codec.FORMAT_KEY)
        if marker is None:
            self._initialise()
        else:
            check_marker(self.path, marker, where="'format' record in the state column family")
        self._hard_state = self._read_hard_state()
        self._snapshot = self._read_snapshot_record()
        self._last_index = max(self._snapshot.meta.last_index, self._stored_last_index())
        self._next_generation = self._snapshot.generation + 1
        self._writer: RocksDBSnapshotWriter | None = None
        self._drop_stale_chunks()

    def _initialise(self) -> None:
        with rocksdb_errors(self.path, "open"):
            untouched = all(first(cf) is None for cf in (self._log, self._state, self._chunks))
        if not untouched:
            raise self._corrupt("the store", LookupError("its format key is missing"))
        batch = RocksBatch(raw_mode=True)
        batch.put(codec.FORMAT_KEY, codec.format_marker(), self._state_cf)
        self._apply(batch, durable=True)

    def _read_hard_state(self) -> HardState:
        with rocksdb_errors(self.path, "read the hard state"):
            value = self._state.get(codec.HARD_STATE_KEY)
        if value is None:
            return HardState()
        try:
            return codec.decode_hard_state(value)
        except codec.ChecksumMismatch as exc:
            raise self._corrupt("the hard state", exc) from exc

    def _read_snapshot_record(self) -> codec.SnapshotRecord:
        with rocksdb_errors(self.path, "read the snapshot pointer"):
            value = self._state.get(codec.SNAPSHOT_KEY)
        if value is None:
            return codec.SnapshotRecord(SnapshotMeta(), 0, 0)
        try:
            return codec.decode_snapshot_record(value)
        except codec.ChecksumMismatch as exc:
            raise self._corrupt("the snapshot pointer", exc) from exc

    def _stored_last_index(self) -> LogIndex:
        with rocksdb_errors(self.path, "read the log"):
            last = first(self._log, backwards=True)
        return 0 if last is None else codec.key_index(last)

    def _drop_stale_chunks(self) -> None:
        """Delete chunks of snapshots that were staged but never committed (a crash, an abort)."""
        current = self._snapshot.generation
        with rocksdb_errors(self.path, "read snapshot chunks"):
            lowest = first(self._chunks)
            highest = first(self._chunks, backwards=True)
        if any(
            key is not None and codec.chunk_key_parts(key)[0] != current
            for key in (lowest, highest)
        ):
            batch = RocksBatch(raw_mode=True)
            batch.delete_range(codec.chunk_key(0, 0), codec.chunk_key(current, 0), self._chunks_cf)
            batch.delete_range(codec.chunk_key(current + 1, 0), codec.KEY_END, self._chunks_cf)
            self._apply(batch, durable=True)

    def _corrupt(self, what: str, cause: Exception) -> CorruptStorageError:
        return corrupt(self.path, what, cause)

    def _apply(self, batch: RocksBatch, *, durable: bool = False) -> None:
        with rocksdb_errors(self.path, "write"):
            self._db.write(batch, self._write_options)
            if durable and self._sync_mode == "flush_wal":
                self._db.flush_wal(True)

    @property
    def _log_cf(self) -> ColumnFamily:
        return self._handles[codec.LOG_CF]

    @property
    def _state_cf(self) -> ColumnFamily:
        return self._handles[codec.STATE_CF]

    @property
    def _chunks_cf(self) -> ColumnFamily:
        return self._handles[codec.SNAPSHOT_CF]

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"{self.path}: the store is closed")

    # --- the Storage protocol ---------------------------------------------------------

    def load(self) -> RestoredState:
        """See :meth:`replobj.storage.Storage.load`.

        Also reads the current snapshot's chunks and the identity record, so damage
        anywhere in the store is reported here, at start, rather than later.
        """
        self._check_open()
        entries = self.entries(self.first_index(), self._last_index + 1)
        record = self._snapshot
        for _ in chunk_pieces(self.path, self._chunks, record.generation, 0, record.size):
            pass
        self.identity()
        return RestoredState(self._hard_state, self._snapshot.meta, tuple(entries))

    def write(self, batch: WriteBatch) -> None:
        """See :meth:`replobj.storage.Storage.write`."""
        self._check_open()
        last_index = self._last_index
        new_last = check_batch(batch, self._snapshot.meta.last_index, last_index)
        rocks = RocksBatch(raw_mode=True)
        if batch.hard_state is not None:
            rocks.put(
                codec.HARD_STATE_KEY,
                codec.encode_hard_state(batch.hard_state),
                self._state_cf,
            )
        for op in batch.operations:
            if isinstance(op, AppendEntries):
                first = op.entries[0].index
                if first <= last_index:
                    rocks.delete_range(codec.index_key(first), codec.KEY_END, self._log_cf)
                for entry in op.entries:
                    rocks.put(
                        codec.index_key(entry.index),
                        codec.encode_entry(entry),
                        self._log_cf,
                    )
                last_index = op.entries[-1].index
            else:
                rocks.delete_range(codec.index_key(0), codec.index_key(op.upto + 1), self._log_cf)
        self._apply(rocks)
        self._last_index = new_last
        if batch.hard_state is not None:
            self._hard_state = batch.hard_state

    def sync(self) -> None:
        """See :meth:`replobj.storage.Storage.sync`."""
        self._check_open()
        if self._sync_mode == "flush_wal":
            with rocksdb_errors(self.path, "sync"):
                self._db.flush_wal(True)

    def hard_state(self) -> HardState:
        """See :meth:`replobj.storage.Storage.hard_state`."""
        return self._hard_state

    def first_index(self) -> LogIndex:
        """See :meth:`replobj.storage.Storage.first_index`."""
        return self._snapshot.meta.last_index + 1

    def last_index(self) -> LogIndex:
        """See :meth:`replobj.storage.Storage.last_index`."""
        return self._last_index

    def term_at(self, index: LogIndex) -> Term | None:
        """See :meth:`replobj.storage.Storage.term_at`."""
        meta = self._snapshot.meta
        if index == meta.last_index:
            return meta.last_term
        if index < meta.last_index or index > self._last_index:
            return None
        return self.entries(index, index + 1)[0].term

    def entries(self, lo: LogIndex, hi: LogIndex) -> list[Entry]:
        """See :meth:`replobj.storage.Storage.entries`."""
        self._check_open()
        if not self.first_index() <= lo <= hi <= self._last_index + 1:
            raise ValueError(
                f"entries({lo}, {hi}) outside the stored log "
                f"{self.first_index()}..{self._last_index}"
            )
        if lo == hi:
            return []
        result: list[Entry] = []
        expected = lo
        with rocksdb_errors(self.path, "read the log"):
            for key, value in scan(self._log, start=codec.index_key(lo)):
                if expected == hi:
                    break
                index = codec.key_index(key)
                if index != expected:
                    break
                try:
                    result.append(codec.decode_entry(key, value))
                except codec.ChecksumMismatch as exc:
                    raise self._corrupt(f"log entry {index}", exc) from exc
                expected += 1
        if expected != hi:
            raise self._corrupt(f"the log (entry {expected} is missing)", LookupError("gap"))
        return result

    def snapshot_meta(self) -> SnapshotMeta:
        """See :meth:`replobj.storage.Storage.snapshot_meta`."""
        return self._snapshot.meta

    def snapshot_size(self) -> int:
        """See :meth:`replobj.storage.Storage.snapshot_size`."""
        return self._snapshot.size

    def read_snapshot_chunk(self, offset: int, max_bytes: int) -> bytes:
        """See :meth:`replobj.storage.Storage.read_snapshot_chunk`."""
        self._check_open()
        record = self._snapshot
        end = min(record.size, offset + max_bytes)
        if offset >= end:
            return b""
        return b"".join(chunk_pieces(self.path, self._chunks, record.generation, offset, end))

    def begin_snapshot(self, meta: SnapshotMeta) -> RocksDBSnapshotWriter:
        """See :meth:`replobj.storage.Storage.begin_snapshot`."""
        self._check_open()
        check_snapshot_meta(meta, self._snapshot.meta)
        if self._writer is not None:
            self._writer.abort()
        self._writer = RocksDBSnapshotWriter(self, meta, self._next_generation)
        self._next_generation += 1
        return self._writer

    def identity(self) -> StoreIdentity | None:
        """See :meth:`replobj.storage.Storage.identity`."""
        self._check_open()
        with rocksdb_errors(self.path, "read"):
            value = self._state.get(codec.IDENTITY_KEY)
        if value is None:
            return None
        try:
            member, cluster = codec.decode_identity(value)
        except ValueError as exc:
            raise self._corrupt("the identity record", exc) from exc
        return StoreIdentity(member, cluster)

    def set_identity(self, identity: StoreIdentity) -> None:
        """See :meth:`replobj.storage.Storage.set_identity`."""
        self._check_open()
        batch = RocksBatch(raw_mode=True)
        value = codec.encode_identity(identity.member_id, identity.cluster_id)
        batch.put(codec.IDENTITY_KEY, value, self._state_cf)
        self._apply(batch, durable=True)

    def close(self) -> None:
        """See :meth:`replobj.storage.Storage.close`."""
        if not self._closed:
            self._release()

    def _release(self) -> None:
        """Close the column families, then the database, and drop every handle even if
        closing failed: RocksDB keeps its lock file until the last handle is gone."""
        self._closed = True
        try:
            with rocksdb_errors(self.path, "close"):
                for column_family in ("_log", "_state", "_chunks"):
                    opened = getattr(self, column_family, None)
                    if opened is not None:
                        opened.close()
                getattr(self, "_handles", {}).clear()
                self._db.close()
        finally:
            for name in ("_log", "_state", "_chunks", "_handles", "_db"):
                self.__dict__.pop(name, None)

    def __enter__(self) -> RocksDBStorage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- used by the snapshot writer --------------------------------------------------

    def _stage(self, generation: int, offset: int, data: bytes, *, restart: bool) -> None:
        self._check_open()
        batch = RocksBatch(raw_mode=True)
        if restart:
            batch.delete_range(
                codec.chunk_key(generation, 0),
                codec.chunk_key(generation + 1, 0),
                self._chunks_cf,
            )
        for start in range(0, len(data), codec.MAX_CHUNK_VALUE):
            key = codec.chunk_key(generation, offset + start)
            batch.put(
                key,
                codec.seal(key, data[start : start + codec.MAX_CHUNK_VALUE]),
                self._chunks_cf,
            )
        self._apply(batch)

    def _discard(self, generation: int) -> None:
        if self._closed:
            return
        batch = RocksBatch(raw_mode=True)
        batch.delete_range(
            codec.chunk_key(generation, 0),
            codec.chunk_key(generation + 1, 0),
            self._chunks_cf,
        )
        self._apply(batch)

    def _commit(self, writer: RocksDBSnapshotWriter, size: int, keep_log: bool) -> None:
        self._check_open()
        if self._writer is not writer:
            raise StorageError(WRITER_FINISHED)
        meta, old = writer.meta, self._snapshot
        record = codec.SnapshotRecord(meta, writer.generation, size)
        batch = RocksBatch(raw_mode=True)
        batch.put(codec.SNAPSHOT_KEY, codec.encode_snapshot_record(record), self._state_cf)
        batch.delete_range(
            codec.chunk_key(old.generation, 0),
            codec.chunk_key(old.generation + 1, 0),
            self._chunks_cf,
        )
        log_end = codec.index_key(meta.last_index + 1) if keep_log else codec.KEY_END
        batch.delete_range(codec.index_key(0), log_end, self._log_cf)
        self._apply(batch, durable=True)
        self._snapshot = record
        self._last_index = max(self._last_index, meta.last_index) if keep_log else meta.last_index
        self._writer = None
