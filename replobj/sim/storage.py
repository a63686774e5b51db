"""Simulated per-node storage: a durable part, unsynced appends, a snapshot store.

The rule of this module: only what a real disk would keep survives :meth:`SimStorage.crash`.
Hard state and snapshots are durable as soon as they are written; log appends become
durable one by one, in issue order, when the simulated fsync of each completes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from replobj.raft import Entry, HardState, LogIndex, RestoredState, SnapshotMeta, Term


class StorageContractError(AssertionError):
    """The core asked storage for something its contract forbids (e.g. a gap in the log)."""


class SimLog:
    """A contiguous run of log entries after ``base`` (the index covered by the snapshot)."""

    __slots__ = ("base", "base_term", "entries")

    def __init__(self, base: LogIndex = 0, base_term: Term = 0) -> None:
        self.base = base
        self.base_term = base_term
        self.entries: list[Entry] = []

    @property
    def last_index(self) -> LogIndex:
        """Index of the last entry held (``base`` when empty)."""
        return self.base + len(self.entries)

    def entry(self, index: LogIndex) -> Entry | None:
        """The entry at ``index``, or ``None`` if compacted or beyond the end."""
        offset = index - self.base - 1
        if 0 <= offset < len(self.entries):
            return self.entries[offset]
        return None

    def term_at(self, index: LogIndex) -> Term | None:
        """Term of the entry at ``index`` (``base_term`` at ``base``), ``None`` if unknown."""
        if index == self.base:
            return self.base_term
        found = self.entry(index)
        return None if found is None else found.term

    def write(self, entries: tuple[Entry, ...]) -> None:
        """Delete entries at or after ``entries[0].index``, then append (entries ≤ base skipped).

        :raises StorageContractError: if the write would leave a gap after the last entry.
        """
        kept = [e for e in entries if e.index > self.base]
        if not kept:
            return
        first = kept[0].index
        if first - 1 > self.last_index:
            raise StorageContractError(
                f"AppendLog starting at {first} leaves a gap after last index {self.last_index}"
            )
        del self.entries[first - self.base - 1 :]
        self.entries.extend(kept)

    def compact(self, upto: LogIndex, upto_term: Term) -> None:
        """Drop entries up to and including ``upto``; ``upto`` becomes the new base."""
        if upto <= self.base:
            return
        del self.entries[: upto - self.base]
        self.base = upto
        self.base_term = upto_term

    def clear_after(self, base: LogIndex, base_term: Term) -> None:
        """Drop every entry and restart the log after ``base``."""
        self.entries.clear()
        self.base = base
        self.base_term = base_term


@dataclass(slots=True)
class PendingAppend:
    """An ``AppendLog`` written but not yet durable; ``seq`` orders the fsyncs."""

    seq: int
    entries: tuple[Entry, ...]


class SimStorage:
    """One node's disk.

    ``written`` is the log as the core asked for it (including unsynced appends);
    ``durable`` is what survives a crash. Snapshot bytes are stored with their meta;
    an incoming snapshot is staged apart until installed.
    """

    def __init__(self, initial: RestoredState) -> None:
        self.hard_state: HardState = initial.hard_state
        self.snapshot_meta: SnapshotMeta = initial.snapshot
        self.snapshot_data: bytes = b""
        self.durable = SimLog(initial.snapshot.last_index, initial.snapshot.last_term)
        self.written = SimLog(initial.snapshot.last_index, initial.snapshot.last_term)
        if initial.entries:
            self.durable.write(initial.entries)
            self.written.write(initial.entries)
        self.pending: deque[PendingAppend] = deque()
        self.next_seq = 0
        self.staging_meta: SnapshotMeta | None = None
        self.staging: bytearray = bytearray()

    def append(self, entries: tuple[Entry, ...]) -> int:
        """Issue an unsynced append; returns its fsync sequence number."""
        self.written.write(entries)
        self.next_seq += 1
        self.pending.append(PendingAppend(self.next_seq, entries))
        return self.next_seq

    def sync_through(self, seq: int) -> list[PendingAppend]:
        """Make every pending append up to ``seq`` durable; returns the appends made durable."""
        done: list[PendingAppend] = []
        while self.pending and self.pending[0].seq <= seq:
            op = self.pending.popleft()
            self.durable.write(op.entries)
            done.append(op)
        return done

    def save_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        """Durably replace the current snapshot with one taken locally."""
        self.snapshot_meta = meta
        self.snapshot_data = data

    def compact(self, upto: LogIndex) -> None:
        """Delete log entries up to ``upto`` (must be covered by the stored snapshot).

        :raises StorageContractError: if ``upto`` is beyond the stored snapshot.
        """
        if upto > self.snapshot_meta.last_index:
            raise StorageContractError(
                f"CompactLog({upto}) beyond the stored snapshot at {self.snapshot_meta.last_index}"
            )
        term = self.snapshot_meta.last_term if upto == self.snapshot_meta.last_index else 0
        for log in (self.written, self.durable):
            known = log.term_at(upto)
            log.compact(upto, term if known is None else known)

    def stage_chunk(self, meta: SnapshotMeta, offset: int, data: bytes) -> None:
        """Write an incoming snapshot chunk to the staging area (offset 0 restarts it).

        :raises StorageContractError: for a chunk past the staged end or of another snapshot.
        """
        if offset == 0:
            self.staging_meta = meta
            self.staging = bytearray()
        if self.staging_meta != meta or offset > len(self.staging):
            raise StorageContractError(
                f"WriteSnapshotChunk at offset {offset} does not continue the staged snapshot "
                f"({len(self.staging)} bytes of {self.staging_meta})"
            )
        self.staging[offset:] = data

    def install_staged(self, meta: SnapshotMeta, keep_log: bool) -> bytes:
        """Atomically make the staged snapshot current; returns its bytes.

        :raises StorageContractError: if nothing (or another snapshot) is staged.
        """
        if self.staging_meta != meta:
            raise StorageContractError(f"InstallSnapshot({meta}) but staged {self.staging_meta}")
        self.snapshot_meta = meta
        self.snapshot_data = bytes(self.staging)
        self.staging_meta = None
        self.staging = bytearray()
        if keep_log:
            self.written.compact(meta.last_index, meta.last_term)
            self.durable.compact(meta.last_index, meta.last_term)
        else:
            self.written.clear_after(meta.last_index, meta.last_term)
            self.durable.clear_after(meta.last_index, meta.last_term)
            self.pending.clear()
        return self.snapshot_data

    def crash(self) -> None:
        """Lose everything not durable: unsynced appends and the staging area."""
        self.pending.clear()
        self.staging_meta = None
        self.staging = bytearray()
        self.written = SimLog(self.durable.base, self.durable.base_term)
        self.written.entries = list(self.durable.entries)

    def restored_state(self) -> RestoredState:
        """What a restarting node reads back: hard state, snapshot meta, entries after it."""
        snap = self.snapshot_meta.last_index
        entries = tuple(e for e in self.durable.entries if e.index > snap)
        return RestoredState(self.hard_state, self.snapshot_meta, entries)
