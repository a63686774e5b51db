"""The in-memory view of the replicated log: entries after the last snapshot, and configs.

The durable copy belongs to the driver's storage; this module only mirrors what the
core has asked the driver to write, so the core can answer term and config questions
and build AppendEntries without I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from .types import ClusterConfig, Entry, EntryKind, LogIndex, SnapshotMeta, Term


class RaftLog:
    """Entries ``snapshot.last_index + 1 .. last_index`` plus the snapshot they follow."""

    def __init__(self, snapshot: SnapshotMeta, entries: Sequence[Entry] = ()) -> None:
        self.snapshot = snapshot
        self._entries: list[Entry] = []
        self._configs: list[tuple[LogIndex, ClusterConfig]] = []
        if entries:
            if entries[0].index != snapshot.last_index + 1:
                raise ValueError(
                    f"restored entries start at {entries[0].index}, "
                    f"expected {snapshot.last_index + 1} (right after the snapshot)"
                )
            self.append(entries)

    @property
    def first_index(self) -> LogIndex:
        """Index of the first entry held in memory (may exceed :attr:`last_index` if empty)."""
        return self.snapshot.last_index + 1

    @property
    def last_index(self) -> LogIndex:
        """Index of the last entry, or the snapshot's last index when no entry follows it."""
        return self.snapshot.last_index + len(self._entries)

    @property
    def last_term(self) -> Term:
        """Term of the last entry (or of the snapshot)."""
        return self._entries[-1].term if self._entries else self.snapshot.last_term

    @property
    def config(self) -> ClusterConfig:
        """The latest configuration in the log, in effect as soon as appended (thesis §4.1)."""
        return self._configs[-1][1] if self._configs else self.snapshot.config

    @property
    def config_index(self) -> LogIndex:
        """Index of the entry holding :attr:`config` (the snapshot's index if none follows it)."""
        return self._configs[-1][0] if self._configs else self.snapshot.last_index

    def config_at(self, index: LogIndex) -> ClusterConfig:
        """The configuration in effect at ``index`` (``index`` ≥ the snapshot's last index)."""
        for config_index, config in reversed(self._configs):
            if config_index <= index:
                return config
        return self.snapshot.config

    def term_at(self, index: LogIndex) -> Term | None:
        """Term of the entry at ``index``; ``None`` if compacted away or beyond the log."""
        offset = index - self.first_index
        if offset < -1 or offset >= len(self._entries):
            return None
        if offset == -1:
            return self.snapshot.last_term
        return self._entries[offset].term

    def entry(self, index: LogIndex) -> Entry:
        """The entry at ``index``, which must be held in memory."""
        return self._entries[index - self.first_index]

    def between(self, lo: LogIndex, hi: LogIndex) -> list[Entry]:
        """Entries ``lo .. hi - 1`` (clipped to what is held in memory)."""
        first = self.first_index
        return self._entries[max(lo - first, 0) : max(hi - first, 0)]

    def is_up_to_date(self, last_index: LogIndex, last_term: Term) -> bool:
        """Whether a log ending at (``last_index``, ``last_term``) is as up to date (§5.4.1)."""
        return (last_term, last_index) >= (self.last_term, self.last_index)

    def append(self, entries: Sequence[Entry]) -> None:
        """Write ``entries``, deleting every held entry at or after ``entries[0].index``."""
        if not entries:
            return
        start = entries[0].index
        if not self.first_index <= start <= self.last_index + 1:
            raise ValueError(
                f"cannot append at {start}: log holds {self.first_index}..{self.last_index}"
            )
        del self._entries[start - self.first_index :]
        while self._configs and self._configs[-1][0] >= start:
            self._configs.pop()
        expected = start
        for entry in entries:
            if entry.index != expected:
                raise ValueError(f"entries are not contiguous at {entry.index}")
            expected += 1
            self._entries.append(entry)
            if entry.kind is EntryKind.CONFIG:
                self._configs.append((entry.index, ClusterConfig.decode(entry.payload)))

    def find_conflict_by_term(self, index: LogIndex, term: Term) -> LogIndex:
        """The largest index ≤ ``index`` whose term is ≤ ``term`` (fast backtracking).

        Stops at the snapshot's last index, whose term is always known.
        """
        index = min(index, self.last_index)
        first = self.first_index
        while index >= first and self._entries[index - first].term > term:
            index -= 1
        return max(index, self.snapshot.last_index)

    def compact(self, snapshot: SnapshotMeta) -> None:
        """Drop entries up to ``snapshot.last_index``, which the snapshot now covers."""
        upto = snapshot.last_index
        if upto <= self.snapshot.last_index:
            return
        if upto > self.last_index:
            raise ValueError(f"cannot compact to {upto}: log ends at {self.last_index}")
        del self._entries[: upto - self.first_index + 1]
        self._configs = [(i, c) for i, c in self._configs if i > upto]
        self.snapshot = snapshot

    def install(self, snapshot: SnapshotMeta, keep_entries: bool) -> None:
        """Replace the log's prefix with ``snapshot``; keep later entries only if asked (§7)."""
        if keep_entries and self.term_at(snapshot.last_index) == snapshot.last_term:
            self.compact(snapshot)
            return
        self._entries = []
        self._configs = []
        self.snapshot = snapshot
