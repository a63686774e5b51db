"""The contract between the runtime and a durable store of Raft state.

A store keeps three things for one node: the hard state (term and vote), the log
after the current snapshot, and that snapshot (metadata plus opaque bytes). Every
implementation (:class:`~replobj.storage.MemoryStorage`, ``replobj_rocksdb.RocksDBStorage``)
passes the same conformance suite in ``tests/storage/``.

Durability rule of the whole module: :meth:`Storage.write` makes a batch *visible*
(readable through this object) but not durable; :meth:`Storage.sync` makes every
batch written before it durable with one disk flush. A batch is atomic: after a
crash it is either wholly present or wholly absent, and batches survive in order
(a later batch never survives without every earlier one). A snapshot commit is
atomic and durable when it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..raft.options import RestoredState
from ..raft.types import Entry, HardState, LogIndex, NodeId, SnapshotMeta, Term

__all__ = [
    "AppendEntries",
    "CompactLog",
    "SnapshotWriter",
    "Storage",
    "StoreIdentity",
    "WriteBatch",
    "WriteOp",
]


@dataclass(frozen=True, slots=True)
class AppendEntries:
    """Delete every stored entry at or after ``entries[0].index``, then store ``entries``."""

    entries: tuple[Entry, ...]

    def __post_init__(self) -> None:
        if not self.entries:
            raise ValueError("an append needs at least one entry")
        first = self.entries[0].index
        for offset, entry in enumerate(self.entries):
            if entry.index != first + offset:
                raise ValueError(
                    f"appended entries must be contiguous: expected index {first + offset}, "
                    f"got {entry.index}"
                )


@dataclass(frozen=True, slots=True)
class CompactLog:
    """Delete every stored entry with index ``<= upto`` (the snapshot must cover ``upto``)."""

    upto: LogIndex


@dataclass(frozen=True, slots=True)
class StoreIdentity:
    """Whose data a store holds: the member it was created for and that member's cluster.

    ``cluster_id`` is ``""`` until the member has learned its cluster's id (a founder before
    the first leader's id entry applies, a joining member before it receives the log).
    """

    member_id: NodeId
    cluster_id: str = ""


WriteOp = AppendEntries | CompactLog
"""One log operation of a :class:`WriteBatch`, applied in the order it was added."""


class WriteBatch:
    """Changes that become visible together and durable together (one fsync per batch).

    Log operations apply in the order they were added, so a batch may hold several
    appends that overwrite each other's suffix. The hard state, if set, replaces the
    stored one (the last value set wins).
    """

    __slots__ = ("_hard_state", "_ops")

    def __init__(self) -> None:
        self._hard_state: HardState | None = None
        self._ops: list[WriteOp] = []

    @property
    def hard_state(self) -> HardState | None:
        """The hard state this batch stores, or ``None`` to leave it unchanged."""
        return self._hard_state

    @property
    def operations(self) -> tuple[WriteOp, ...]:
        """The log operations in the order they apply."""
        return tuple(self._ops)

    def set_hard_state(self, hard_state: HardState) -> WriteBatch:
        """Store ``hard_state`` (term and vote) with this batch.

        :param hard_state: the new term and vote.
        :returns: this batch, for chaining.
        """
        self._hard_state = hard_state
        return self

    def append(self, entries: Sequence[Entry]) -> WriteBatch:
        """Delete stored entries at or after ``entries[0].index`` and store ``entries``.

        An empty sequence is ignored.

        :param entries: contiguous entries, in index order.
        :returns: this batch, for chaining.
        :raises ValueError: if the entries are not contiguous.
        """
        if entries:
            self._ops.append(AppendEntries(tuple(entries)))
        return self

    def compact(self, upto: LogIndex) -> WriteBatch:
        """Delete entries with index ``<= upto`` (already covered by the durable snapshot).

        :param upto: the last index to delete; at most the snapshot's ``last_index``.
        :returns: this batch, for chaining.
        """
        self._ops.append(CompactLog(upto))
        return self

    def __bool__(self) -> bool:
        return self._hard_state is not None or bool(self._ops)

    def __repr__(self) -> str:
        return f"WriteBatch(hard_state={self._hard_state!r}, operations={self._ops!r})"


@runtime_checkable
class SnapshotWriter(Protocol):
    """Stages the bytes of one snapshot; nothing is visible until :meth:`commit`.

    Staged bytes are never durable on their own: a crash before :meth:`commit`
    returns leaves the previous snapshot and log in place.
    """

    @property
    def meta(self) -> SnapshotMeta:
        """The metadata the snapshot will carry once committed."""
        ...

    def write_chunk(self, offset: int, data: bytes) -> None:
        """Stage ``data`` at ``offset``; not durable.

        :param offset: the number of bytes staged so far, or 0 to start over.
        :param data: the bytes to stage.
        :raises ValueError: if ``offset`` is neither 0 nor the staged size.
        """
        ...

    def commit(self, *, keep_log: bool = True) -> None:
        """Atomically make the staged bytes the current snapshot; durable on return.

        Stored entries with index ``<= meta.last_index`` are deleted in the same
        atomic step; later entries are kept only if ``keep_log`` (paper §7). Every
        batch written before the commit is made durable too.

        :param keep_log: keep entries after ``meta.last_index``.
        :raises ~replobj.errors.StorageError: if the store could not write.
        """
        ...

    def abort(self) -> None:
        """Discard the staged bytes; the writer cannot be used afterwards."""
        ...


@runtime_checkable
class Storage(Protocol):
    """Durable hard state, log and snapshot of one Raft node.

    Reads always reflect every :meth:`write` so far, synced or not. Only one
    :class:`SnapshotWriter` may be open at a time; beginning another aborts the first.
    Methods are not safe to call concurrently except :meth:`sync`, which may run in a
    worker thread while the owner thread keeps calling the others.
    """

    def load(self) -> RestoredState:
        """Everything a node restarts from: hard state, snapshot metadata, entries after it.

        :raises ~replobj.errors.CorruptStorageError: if a stored entry fails its checksum
            or the log is not contiguous.
        """
        ...

    def write(self, batch: WriteBatch) -> None:
        """Apply ``batch`` atomically; visible at once, durable only after :meth:`sync`.

        :param batch: the changes to apply.
        :raises ValueError: if an append would leave a gap, touch compacted entries, or a
            compaction goes beyond the snapshot; nothing is applied then.
        :raises ~replobj.errors.StorageError: if the store could not write.
        """
        ...

    def sync(self) -> None:
        """Block until every batch written before this call is durable (one flush).

        Releases the GIL while waiting for the disk, so the runtime may call it in a
        worker thread.

        :raises ~replobj.errors.StorageError: if the flush failed; the node must stop.
        """
        ...

    def hard_state(self) -> HardState:
        """The stored term and vote (as last written)."""
        ...

    def first_index(self) -> LogIndex:
        """Index of the first stored entry: the snapshot's ``last_index + 1``."""
        ...

    def last_index(self) -> LogIndex:
        """Index of the last stored entry, or the snapshot's ``last_index`` if the log is empty."""
        ...

    def term_at(self, index: LogIndex) -> Term | None:
        """Term of the entry at ``index``; the snapshot's term at its last index; 0 at index 0.

        :returns: ``None`` if ``index`` is compacted or beyond the log.
        :raises ~replobj.errors.CorruptStorageError: if the entry fails its checksum.
        """
        ...

    def entries(self, lo: LogIndex, hi: LogIndex) -> list[Entry]:
        """Entries ``lo`` to ``hi - 1``.

        :raises ValueError: unless ``first_index() <= lo <= hi <= last_index() + 1``.
        :raises ~replobj.errors.CorruptStorageError: if an entry fails its checksum.
        """
        ...

    def snapshot_meta(self) -> SnapshotMeta:
        """Metadata of the current snapshot (``SnapshotMeta()`` if none was ever stored)."""
        ...

    def snapshot_size(self) -> int:
        """Size in bytes of the current snapshot."""
        ...

    def read_snapshot_chunk(self, offset: int, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` bytes of the current snapshot starting at ``offset``.

        :returns: fewer bytes only at the end of the snapshot; ``b""`` at or past it.
        :raises ~replobj.errors.CorruptStorageError: if a stored chunk fails its checksum.
        """
        ...

    def begin_snapshot(self, meta: SnapshotMeta) -> SnapshotWriter:
        """Start staging a snapshot described by ``meta``; see :class:`SnapshotWriter`."""
        ...

    def identity(self) -> StoreIdentity | None:
        """The stamp written by :meth:`set_identity`, or ``None`` for a store never stamped."""
        ...

    def set_identity(self, identity: StoreIdentity) -> None:
        """Stamp the store with ``identity``; durable when this returns.

        :raises ~replobj.errors.StorageError: if the store could not write.
        """
        ...

    def close(self) -> None:
        """Release the store. Unsynced batches may be lost; call :meth:`sync` first."""
        ...
