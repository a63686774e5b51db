"""Checks every store applies before a batch touches anything (public for backend authors)."""

from __future__ import annotations

from ..raft.types import LogIndex, SnapshotMeta
from .protocol import AppendEntries, WriteBatch

__all__ = ["WRITER_FINISHED", "check_batch", "check_snapshot_meta"]

WRITER_FINISHED = (
    "this snapshot writer is finished (committed, aborted, or superseded by a newer "
    "begin_snapshot()); start a new one"
)


def check_batch(batch: WriteBatch, snapshot_last: LogIndex, last_index: LogIndex) -> LogIndex:
    """Validate ``batch`` for a log ending at ``last_index`` after a snapshot at ``snapshot_last``.

    :returns: the last index once the batch is applied.
    :raises ValueError: if an append leaves a gap or rewrites compacted entries, or a
        compaction reaches past the snapshot.
    """
    for op in batch.operations:
        if isinstance(op, AppendEntries):
            first = op.entries[0].index
            if first <= snapshot_last:
                raise ValueError(
                    f"cannot append at index {first}: entries up to {snapshot_last} "
                    "are compacted into the snapshot"
                )
            if first > last_index + 1:
                raise ValueError(
                    f"cannot append at index {first}: the log ends at {last_index} (gap)"
                )
            last_index = op.entries[-1].index
        elif op.upto > snapshot_last:
            raise ValueError(
                f"cannot compact up to {op.upto}: the snapshot only covers up to {snapshot_last}"
            )
    return last_index


def check_snapshot_meta(new: SnapshotMeta, current: SnapshotMeta) -> None:
    """Refuse a snapshot older than the current one: it would leave a gap before the log.

    :raises ValueError: if ``new.last_index < current.last_index``.
    """
    if new.last_index < current.last_index:
        raise ValueError(
            f"snapshot at index {new.last_index} is older than the current one "
            f"at {current.last_index}"
        )
