"""Snapshots for the runtime: taken locally, streamed to lagging followers, installed on receipt.

A snapshot is taken when the log since the last one passes
:attr:`~replobj.runtime_options.RuntimeOptions.snapshot_entries`; it is sent in chunks
read back from storage, and a received one is staged chunk by chunk, checked by decoding
it into fresh objects, and only then installed atomically (the commit runs in a worker
thread so the event loop keeps running). A snapshot that fails the check is discarded and,
after an election timeout, asked for again: the stored snapshot and log stay as they were,
so the node keeps serving and restarts on them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import anyio

from . import errors
from .pickling import StopFlag
from .raft import actions as act
from .raft.messages import InstallSnapshot as InstallSnapshotMessage
from .raft.node import RaftNode
from .raft.types import Entry, LogIndex, SnapshotMeta
from .runtime_options import RuntimeOptions
from .storage.protocol import SnapshotWriter, Storage
from .transport.base import Transport
from .waiting import IndexWaiters

logger = logging.getLogger("replobj")


class Snapshotter(Protocol):
    """What the runtime needs from the state machine to take and install snapshots."""

    def snapshot(self, stop: StopFlag | None = None) -> bytes:
        """Serialise the whole applied state (possibly in a worker thread: see
        :class:`~replobj.statemachine.StateMachine`); stop early once ``stop`` is set.

        :raises ~replobj.errors.UnpicklableStateError: if the state cannot be pickled.
        :raises ~replobj.errors.SnapshotAbandonedError: if ``stop`` was set.
        """
        ...

    def check_snapshot(self, data: bytes, stop: StopFlag | None = None) -> object:
        """Decode ``data`` (from :meth:`snapshot` on some replica) into a fresh state,
        changing nothing; returns what :meth:`restore_checked` takes.

        :raises ~replobj.errors.ReplObjError: if ``data`` cannot be restored here.
        """
        ...

    def restore_checked(self, checked: object) -> None:
        """Replace the applied state with one :meth:`check_snapshot` returned."""
        ...


_MAX_RETRY_DELAY = 60.0
"""Longest wait, in seconds, before asking again for a snapshot after refusals in a row."""


class SnapshotKeeper:
    """The runtime's snapshot duties, against the same core, storage and transport.

    :param raft: the core.
    :param storage: the node's durable store (it holds the current snapshot).
    :param transport: where snapshot chunks are sent.
    :param snapshotter: the state machine's snapshot/restore.
    :param options: the snapshot threshold and chunk size.
    :param applied: the runtime's applied index, advanced past an installed snapshot.
    :param kick: asks the runtime to drain the core's actions soon.
    """

    def __init__(
        self,
        raft: RaftNode,
        storage: Storage,
        transport: Transport,
        snapshotter: Snapshotter,
        options: RuntimeOptions,
        applied: IndexWaiters,
        kick: Callable[[], None],
    ) -> None:
        self._raft = raft
        self._storage = storage
        self._transport = transport
        self._snapshotter = snapshotter
        self._options = options
        self._applied = applied
        self._kick = kick
        self._incoming: SnapshotWriter | None = None
        self._staged = bytearray()
        self._refused: tuple[SnapshotMeta, float] | None = None
        self._refusals = 0
        """Snapshots refused in a row: each doubles the wait before asking again."""
        self._retry_at: LogIndex = 0
        self._applied_bytes = 0
        self.error: str | None = None
        """Why the last snapshot failed (an object's state could not be pickled), or ``None``."""

    def note_applied(self, entries: Sequence[Entry]) -> None:
        """Count the payload bytes of applied entries toward the next snapshot."""
        self._applied_bytes += sum(len(entry.payload) for entry in entries)

    def _applied_here(self) -> LogIndex:
        """The index the state machine has really applied: the core counts entries applied
        when it hands them out, a moment before the runtime applies them, and a snapshot
        labelled with the core's index would hold an older state."""
        return min(self._raft.applied_index, self._applied.index)

    def take_if_due(self) -> None:
        """Take a snapshot if enough entries, or enough payload bytes, were applied since
        the last one (or failed one)."""
        raft = self._raft
        applied = self._applied_here()
        options = self._options
        enough_entries = applied - raft.snapshot.last_index >= options.snapshot_entries
        if not enough_entries and self._applied_bytes < options.snapshot_bytes:
            return
        if applied < self._retry_at:
            return
        try:
            self.take()
        except errors.UnpicklableStateError as exc:
            self._retry_at = applied + self._options.snapshot_entries
            logger.error(
                "%s could not take a snapshot at index %d, keeping the log and trying again "
                "after %d more entries: %s",
                raft.id,
                applied,
                self._options.snapshot_entries,
                exc,
            )

    def take(self) -> SnapshotMeta | None:
        """Snapshot the state machine at the applied index and compact the log.

        :raises ~replobj.errors.UnpicklableStateError: if an object's state cannot be
            pickled; the log is kept and :attr:`error` says why.
        """
        raft = self._raft
        applied = self._applied_here()
        if applied <= raft.snapshot.last_index:
            return None
        meta = raft.snapshot_meta_for(applied)
        try:
            data = self._snapshotter.snapshot()
        except errors.UnpicklableStateError as exc:
            self.error = str(exc)
            raise
        self.error = None
        writer = self._storage.begin_snapshot(meta)
        chunk = self._options.snapshot_chunk_bytes
        for offset in range(0, len(data), chunk):
            writer.write_chunk(offset, data[offset : offset + chunk])
        writer.commit(keep_log=True)
        raft.handle_snapshot_taken(meta)
        self._applied_bytes = 0
        self._kick()
        logger.info("%s took a snapshot at index %d (%d bytes)", raft.id, applied, len(data))
        return meta

    def send_chunk(self, action: act.SendSnapshotChunk) -> None:
        """Send the requested chunk of the stored snapshot, unless a newer one replaced it."""
        storage = self._storage
        if storage.snapshot_meta() != action.meta:
            return
        data = storage.read_snapshot_chunk(action.offset, action.max_bytes)
        done = action.offset + len(data) >= storage.snapshot_size()
        message = InstallSnapshotMessage(
            action.term, action.sender, action.meta, action.offset, data, done, action.seq
        )
        self._transport.send(action.to, message)

    def stage_chunk(self, action: act.WriteSnapshotChunk) -> None:
        """Write a received chunk; a first chunk or another snapshot starts a new one."""
        writer = self._incoming
        if action.offset == 0 or writer is None or writer.meta != action.meta:
            if writer is not None:
                writer.abort()
            writer = self._incoming = self._storage.begin_snapshot(action.meta)
            self._staged = bytearray()
        writer.write_chunk(action.offset, action.data)
        del self._staged[action.offset :]
        self._staged += action.data

    async def install(self, action: act.InstallSnapshot) -> None:
        """Check the staged snapshot in a fresh state; if it is good, commit it and restore
        the state machine from it, else discard it (see :meth:`retry_if_due`)."""
        writer = self._incoming
        if writer is None or writer.meta != action.meta:
            return
        self._incoming = None
        data, self._staged = bytes(self._staged), bytearray()
        try:
            checked = self._snapshotter.check_snapshot(data)
        except errors.ReplObjError as exc:
            writer.abort()
            self._refuse(action.meta, exc)
            return
        await anyio.to_thread.run_sync(lambda: writer.commit(keep_log=action.keep_log))
        self._snapshotter.restore_checked(checked)
        self._raft.handle_snapshot_installed(action.meta)
        self._applied.advance(action.meta.last_index)
        self._applied_bytes = 0
        self._refusals = 0
        logger.info("%s installed a snapshot at index %d", self._raft.id, action.meta.last_index)
        self._kick()

    def _refuse(self, meta: SnapshotMeta, exc: errors.ReplObjError) -> None:
        """Discard a bad snapshot and ask again later: after the election timeout, doubled
        for each refusal in a row up to :data:`_MAX_RETRY_DELAY` (a lasting cause, such as
        other code on the leader, must not flood the leader and the log)."""
        self._refusals += 1
        delay = min(self._options.election_timeout * 2 ** (self._refusals - 1), _MAX_RETRY_DELAY)
        self._refused = (meta, anyio.current_time() + delay)
        logger.error(
            "%s refused a snapshot at index %d (term %d) from %r: %s; its own snapshot and "
            "log are kept, and it asks for the snapshot again in %.1fs (refusal %d in a row; "
            "if this repeats, check that every node runs the same code and attaches the "
            "same objects)",
            self._raft.id,
            meta.last_index,
            meta.last_term,
            self._raft.leader,
            exc,
            delay,
            self._refusals,
        )

    def retry_if_due(self) -> None:
        """Once the delay after a refused snapshot has passed, ask the leader again."""
        refused = self._refused
        if refused is None or anyio.current_time() < refused[1]:
            return
        self._refused = None
        self._raft.handle_snapshot_rejected(refused[0])
        self._kick()
