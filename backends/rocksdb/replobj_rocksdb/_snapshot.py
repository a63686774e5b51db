"""Staging an incoming or freshly taken snapshot under a new generation number.

Chunks go to the snapshot column family under ``generation || offset`` keys, never
synced; the snapshot becomes current only when :meth:`RocksDBSnapshotWriter.commit`
writes the pointer in the state column family, in the same atomic batch that drops
the previous generation's chunks and the compacted log prefix, then syncs. A crash
before that leaves the previous pointer, snapshot and log untouched; the orphaned
staged chunks are deleted at the next open.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rocksdict import Rdict

from replobj.errors import StorageError
from replobj.raft.types import SnapshotMeta
from replobj.storage.validation import WRITER_FINISHED

from . import _codec as codec
from ._errors import corrupt, rocksdb_errors
from ._scan import check_status, verifying_reads

if TYPE_CHECKING:
    from .store import RocksDBStorage


class RocksDBSnapshotWriter:
    """Implements :class:`replobj.storage.SnapshotWriter` for :class:`RocksDBStorage`."""

    def __init__(self, store: RocksDBStorage, meta: SnapshotMeta, generation: int) -> None:
        self._store: RocksDBStorage | None = store
        self._meta = meta
        self.generation = generation
        """The key prefix the staged chunks live under."""
        self._size = 0

    @property
    def meta(self) -> SnapshotMeta:
        """See :attr:`replobj.storage.SnapshotWriter.meta`."""
        return self._meta

    def write_chunk(self, offset: int, data: bytes) -> None:
        """See :meth:`replobj.storage.SnapshotWriter.write_chunk`."""
        store = self._require_store()
        if offset != 0 and offset != self._size:
            raise ValueError(f"chunk at offset {offset}, but {self._size} bytes are staged")
        store._stage(self.generation, offset, data, restart=offset == 0 and self._size > 0)
        self._size = offset + len(data)

    def commit(self, *, keep_log: bool = True) -> None:
        """See :meth:`replobj.storage.SnapshotWriter.commit`."""
        self._require_store()._commit(self, self._size, keep_log)
        self._store = None

    def abort(self) -> None:
        """See :meth:`replobj.storage.SnapshotWriter.abort`."""
        if self._store is not None:
            store, self._store = self._store, None
            store._discard(self.generation)

    def _require_store(self) -> RocksDBStorage:
        if self._store is None:
            raise StorageError(WRITER_FINISHED)
        return self._store


def chunk_pieces(
    path: Path, chunks: Rdict, generation: int, start: int, end: int
) -> Iterator[bytes]:
    """Bytes ``start..end`` of snapshot ``generation`` from the ``chunks`` column family,
    one checked piece per stored value.

    :raises ~replobj.errors.CorruptStorageError: if a value fails its checksum, bytes are
        missing, or RocksDB reports damage.
    """
    done = start
    with rocksdb_errors(path, "read the snapshot"):
        iterator = chunks.iter(verifying_reads())
        iterator.seek_for_prev(codec.chunk_key(generation, start))
        while iterator.valid() and done < end:
            key, value = codec.as_bytes(iterator.key()), codec.as_bytes(iterator.value())
            chunk_generation, chunk_offset = codec.chunk_key_parts(key)
            if chunk_generation != generation or chunk_offset > done:
                break
            try:
                data = codec.unseal(key, value)
            except codec.ChecksumMismatch as exc:
                raise corrupt(path, f"snapshot chunk at offset {chunk_offset}", exc) from exc
            piece = data[done - chunk_offset : end - chunk_offset]
            done += len(piece)
            yield piece
            iterator.next()
        check_status(iterator)
    if done != end:
        raise corrupt(path, f"the snapshot (bytes at {done} missing)", EOFError())
