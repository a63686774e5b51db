"""An in-memory store that can simulate a crash: what was not synced is lost.

It keeps two copies of the state: the *live* one every read sees, and the *durable*
one (what a disk would hold). :meth:`MemoryStorage.sync` moves the unsynced batches
into the durable copy; :meth:`MemoryStorage.crash` returns a new store built from the
durable copy, optionally plus a prefix of the unsynced batches (a disk may have
written some of them before the crash, but never a later one without the earlier).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ..errors import StorageError
from ..raft.options import RestoredState
from ..raft.types import Entry, HardState, LogIndex, SnapshotMeta, Term
from .protocol import AppendEntries, StoreIdentity, WriteBatch, WriteOp
from .validation import WRITER_FINISHED, check_batch, check_snapshot_meta

__all__ = ["MemorySnapshotWriter", "MemoryStorage"]


@dataclass(frozen=True, slots=True)
class _Batch:
    hard_state: HardState | None
    operations: tuple[WriteOp, ...]


@dataclass(slots=True)
class _State:
    hard_state: HardState = field(default_factory=HardState)
    snapshot: SnapshotMeta = field(default_factory=SnapshotMeta)
    snapshot_data: bytes = b""
    log: list[Entry] = field(default_factory=list)

    def copy(self) -> _State:
        return _State(self.hard_state, self.snapshot, self.snapshot_data, list(self.log))

    def apply(self, batch: _Batch) -> None:
        if batch.hard_state is not None:
            self.hard_state = batch.hard_state
        for op in batch.operations:
            first = self.snapshot.last_index + 1
            if isinstance(op, AppendEntries):
                del self.log[op.entries[0].index - first :]
                self.log.extend(op.entries)
            else:
                del self.log[: max(0, op.upto - first + 1)]

    def install(self, meta: SnapshotMeta, data: bytes, keep_log: bool) -> None:
        if keep_log:
            first = self.snapshot.last_index + 1
            self.log = self.log[max(0, meta.last_index - first + 1) :]
        else:
            self.log = []
        self.snapshot = meta
        self.snapshot_data = data


class MemoryStorage:
    """A :class:`~replobj.storage.Storage` held in memory, for simulation and disk-less use.

    Nothing survives the process. For tests, :meth:`crash` models losing power.
    """

    def __init__(self) -> None:
        """Create an empty store (no hard state, no snapshot, no log)."""
        self._live = _State()
        self._durable = _State()
        self._unsynced: list[_Batch] = []
        self._lock = threading.Lock()
        self._writer: MemorySnapshotWriter | None = None
        self._closed = False
        self._identity: StoreIdentity | None = None

    @classmethod
    def _from_state(cls, state: _State) -> MemoryStorage:
        store = cls()
        store._live = state
        store._durable = state.copy()
        return store

    def crash(self, keep_unsynced: int = 0) -> MemoryStorage:
        """Simulate a crash: return a new store with what survived; this one becomes unusable.

        :param keep_unsynced: how many of the oldest unsynced batches a disk happened to
            write before the crash (clamped to the number there are).
        :returns: a store holding the synced state plus those batches.
        """
        self._check_open()
        with self._lock:
            survivor = self._durable.copy()
            for batch in self._unsynced[: max(0, keep_unsynced)]:
                survivor.apply(batch)
        self._closed = True
        crashed = MemoryStorage._from_state(survivor)
        crashed._identity = self._identity
        return crashed

    @property
    def unsynced_batches(self) -> int:
        """How many written batches a crash now could lose."""
        return len(self._unsynced)

    def load(self) -> RestoredState:
        """See :meth:`Storage.load`."""
        self._check_open()
        live = self._live
        return RestoredState(live.hard_state, live.snapshot, tuple(live.log))

    def write(self, batch: WriteBatch) -> None:
        """See :meth:`Storage.write`."""
        self._check_open()
        check_batch(batch, self._live.snapshot.last_index, self.last_index())
        frozen = _Batch(batch.hard_state, batch.operations)
        with self._lock:
            self._live.apply(frozen)
            self._unsynced.append(frozen)

    def sync(self) -> None:
        """See :meth:`Storage.sync`."""
        self._check_open()
        with self._lock:
            for batch in self._unsynced:
                self._durable.apply(batch)
            self._unsynced.clear()

    def hard_state(self) -> HardState:
        """See :meth:`Storage.hard_state`."""
        return self._live.hard_state

    def first_index(self) -> LogIndex:
        """See :meth:`Storage.first_index`."""
        return self._live.snapshot.last_index + 1

    def last_index(self) -> LogIndex:
        """See :meth:`Storage.last_index`."""
        return self._live.snapshot.last_index + len(self._live.log)

    def term_at(self, index: LogIndex) -> Term | None:
        """See :meth:`Storage.term_at`."""
        snapshot = self._live.snapshot
        if index == snapshot.last_index:
            return snapshot.last_term
        if index < snapshot.last_index or index > self.last_index():
            return None
        return self._live.log[index - snapshot.last_index - 1].term

    def entries(self, lo: LogIndex, hi: LogIndex) -> list[Entry]:
        """See :meth:`Storage.entries`."""
        first = self.first_index()
        if not first <= lo <= hi <= self.last_index() + 1:
            raise ValueError(
                f"entries({lo}, {hi}) outside the stored log {first}..{self.last_index()}"
            )
        return self._live.log[lo - first : hi - first]

    def snapshot_meta(self) -> SnapshotMeta:
        """See :meth:`Storage.snapshot_meta`."""
        return self._live.snapshot

    def snapshot_size(self) -> int:
        """See :meth:`Storage.snapshot_size`."""
        return len(self._live.snapshot_data)

    def read_snapshot_chunk(self, offset: int, max_bytes: int) -> bytes:
        """See :meth:`Storage.read_snapshot_chunk`."""
        return self._live.snapshot_data[offset : offset + max_bytes]

    def begin_snapshot(self, meta: SnapshotMeta) -> MemorySnapshotWriter:
        """See :meth:`Storage.begin_snapshot`."""
        self._check_open()
        check_snapshot_meta(meta, self._live.snapshot)
        if self._writer is not None:
            self._writer.abort()
        self._writer = MemorySnapshotWriter(self, meta)
        return self._writer

    def identity(self) -> StoreIdentity | None:
        """See :meth:`Storage.identity`."""
        return self._identity

    def set_identity(self, identity: StoreIdentity) -> None:
        """See :meth:`Storage.set_identity`."""
        self._check_open()
        self._identity = identity

    def close(self) -> None:
        """See :meth:`Storage.close`."""
        self._closed = True

    def _install(self, writer: MemorySnapshotWriter, data: bytes, keep_log: bool) -> None:
        self._check_open()
        if self._writer is not writer:
            raise StorageError(WRITER_FINISHED)
        self.sync()
        with self._lock:
            self._live.install(writer.meta, data, keep_log)
            self._durable.install(writer.meta, data, keep_log)
        self._writer = None

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("this MemoryStorage is closed or crashed; use what crash() returned")


class MemorySnapshotWriter:
    """Implements :class:`~replobj.storage.SnapshotWriter` for :class:`MemoryStorage`."""

    def __init__(self, store: MemoryStorage, meta: SnapshotMeta) -> None:
        self._store: MemoryStorage | None = store
        self._meta = meta
        self._staged = bytearray()

    @property
    def meta(self) -> SnapshotMeta:
        """See :attr:`SnapshotWriter.meta`."""
        return self._meta

    def write_chunk(self, offset: int, data: bytes) -> None:
        """See :meth:`SnapshotWriter.write_chunk`."""
        if self._store is None:
            raise StorageError(WRITER_FINISHED)
        if offset == 0:
            self._staged.clear()
        elif offset != len(self._staged):
            raise ValueError(f"chunk at offset {offset}, but {len(self._staged)} bytes are staged")
        self._staged += data

    def commit(self, *, keep_log: bool = True) -> None:
        """See :meth:`SnapshotWriter.commit`."""
        if self._store is None:
            raise StorageError(WRITER_FINISHED)
        self._store._install(self, bytes(self._staged), keep_log)
        self._store = None

    def abort(self) -> None:
        """See :meth:`SnapshotWriter.abort`."""
        self._store = None
        self._staged = bytearray()
