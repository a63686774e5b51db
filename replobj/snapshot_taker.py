"""Taking local snapshots off the event loop.

A snapshot labelled index ``i`` holds exactly the state after entry ``i``. Pickling a
large state takes long (1M keys: about 0.4 s), so it runs in a worker thread
(:func:`~replobj.snapshot_thread.run_stoppable`; :mod:`replobj.pickling` lets the loop
run meanwhile) while committed entries wait at the :class:`ApplyGate`: calls are still
accepted, replicated and committed, heartbeats still leave and local reads still answer
(queries only read), and the waiting entries are applied in order once the state is
pickled. The bytes are then written chunk by chunk, yielding to the loop between chunks
(1 MiB takes a few ms on RocksDB), and committed with one sync on the loop (a store may
not be used from two threads at once).

Every snapshot goes this way, however small: one is taken every ``snapshot_entries``
entries, a thread hop costs a fraction of a millisecond, and one path is one path to test.

Local snapshots (automatic, in :meth:`SnapshotTaker.run`, or on demand) and the install
of a received snapshot take turns (:attr:`SnapshotTaker.turn`); a local snapshot never
begins its writer while a received one is being staged (the store keeps one writer, and
beginning another aborts the first), and gives way if one begins meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import anyio
import anyio.abc
import anyio.lowlevel

from . import errors
from .pickling import StopFlag
from .raft.node import RaftNode
from .raft.types import Entry, LogIndex, SnapshotMeta
from .runtime_options import RuntimeOptions
from .snapshot_thread import run_stoppable
from .storage.protocol import SnapshotWriter, Storage
from .waiting import IndexWaiters

__all__ = ["ApplyGate", "SnapshotTaker"]

logger = logging.getLogger("replobj")

EntriesCallback = Callable[[tuple[Entry, ...]], None]
"""Applies committed entries (in log order) to the state machine."""


class ApplyGate:
    """Committed entries on their way to the state machine: held while it is closed.

    :param apply: applies entries; the gate calls it in the order entries arrived.
    """

    __slots__ = ("_apply", "_held", "closed")

    def __init__(self, apply: EntriesCallback) -> None:
        self._apply = apply
        self._held: list[tuple[Entry, ...]] = []
        self.closed = False
        """Whether entries are held (a snapshot of the state is being pickled)."""

    def apply(self, entries: tuple[Entry, ...]) -> None:
        """Apply ``entries`` now, or once the gate opens."""
        if self.closed:
            self._held.append(entries)
        else:
            self._apply(entries)

    def close(self) -> None:
        """Hold every entry from now on."""
        self.closed = True

    def open(self) -> None:
        """Apply the held entries, in order, and every later one at once."""
        self.closed = False
        held, self._held = self._held, []
        for entries in held:
            self._apply(entries)


def _stopped_error() -> errors.NodeStoppedError:
    return errors.NodeStoppedError(
        "the node stopped before the snapshot was taken; start it and ask again"
    )


class _Request:
    """One caller of :meth:`SnapshotTaker.take`, waiting for its outcome."""

    __slots__ = ("_done", "_error", "_meta")

    def __init__(self) -> None:
        self._done = anyio.Event()
        self._meta: SnapshotMeta | None = None
        self._error: BaseException | None = None

    def finish(self, meta: SnapshotMeta | None, error: BaseException | None) -> None:
        """The snapshot was taken (``meta``, ``None`` if there was nothing new) or failed."""
        self._meta, self._error = meta, error
        self._done.set()

    async def outcome(self) -> SnapshotMeta | None:
        """Wait for :meth:`finish`; raise its error, or return its snapshot."""
        await self._done.wait()
        if self._error is not None:
            raise self._error
        return self._meta


class SnapshotTaker:
    """Takes the node's own snapshots, in a worker thread, one at a time.

    :param raft: the core.
    :param storage: the node's durable store.
    :param snapshotter: the state machine's ``snapshot(stop)``.
    :param options: the snapshot thresholds and chunk size.
    :param applied: the runtime's applied index.
    :param gate: where committed entries wait while the state is pickled.
    :param kick: asks the runtime to drain the core's actions soon.
    :param may_begin: whether a local snapshot may begin its writer now (no received
        snapshot is being staged).
    """

    def __init__(
        self,
        raft: RaftNode,
        storage: Storage,
        snapshotter: Callable[[StopFlag], bytes],
        options: RuntimeOptions,
        applied: IndexWaiters,
        gate: ApplyGate,
        kick: Callable[[], None],
        may_begin: Callable[[], bool],
    ) -> None:
        self._raft = raft
        self._storage = storage
        self._snapshot = snapshotter
        self._options = options
        self._applied = applied
        self._gate = gate
        self._kick = kick
        self._may_begin = may_begin
        self.turn = anyio.Lock()
        """Held by whoever changes the snapshot: a local one taken, a received one installed."""
        self._wanted = anyio.Event()
        self._requests: list[_Request] = []
        """Callers of :meth:`take` waiting for the next snapshot."""
        self._serving: list[_Request] = []
        """Callers of :meth:`take` waiting for the snapshot being taken."""
        self._stopped = False
        """Whether :meth:`run` has ended (nothing takes snapshots any more)."""
        self._writer: SnapshotWriter | None = None
        self._retry_at: LogIndex = 0
        self._applied_bytes = 0
        self.error: str | None = None
        """Why the last snapshot failed (an object's state could not be pickled), or ``None``."""
        self.taken = 0
        """Snapshots taken since the runtime started."""
        self.last_bytes = 0
        """Size of the last snapshot taken."""
        self.last_seconds = 0.0
        """How long the last one took, pickling and storing."""

    def note_applied(self, entries: Sequence[Entry]) -> None:
        """Count the payload bytes of applied entries toward the next snapshot."""
        self._applied_bytes += sum(len(entry.payload) for entry in entries)

    def reset_progress(self) -> None:
        """A received snapshot was installed: count from it."""
        self._applied_bytes = 0

    def _applied_here(self) -> LogIndex:
        """The index the state machine has really applied: the core counts entries applied
        when it hands them out, a moment before the runtime applies them, and a snapshot
        labelled with the core's index would hold an older state."""
        return min(self._raft.applied_index, self._applied.index)

    def _due(self) -> bool:
        """Whether enough entries, or enough payload bytes, were applied since the last
        snapshot (or failed one)."""
        applied = self._applied_here()
        options = self._options
        enough_entries = applied - self._raft.snapshot.last_index >= options.snapshot_entries
        if not enough_entries and self._applied_bytes < options.snapshot_bytes:
            return False
        return applied >= self._retry_at

    def take_if_due(self) -> None:
        """Start a snapshot in the background (:meth:`run`) if one is due and none runs."""
        if not self.turn.locked() and self._due():
            self._wanted.set()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Take the snapshots :meth:`take_if_due` and :meth:`take` ask for, until cancelled
        (a task of the runtime: a node that stops waits for, or stops, the pickling).

        :raises ~replobj.errors.StorageError: if the store failed (the node must stop).
        """
        try:
            task_status.started()
            while True:
                await self._wanted.wait()
                self._wanted = anyio.Event()
                async with self.turn:
                    if self._requests:
                        await self._take_requested()
                    elif self._due():
                        await self._take_due()
        finally:
            self._stopped = True
            for request in [*self._serving, *self._requests]:
                request.finish(None, _stopped_error())
            self._serving, self._requests = [], []

    async def take(self) -> SnapshotMeta | None:
        """Snapshot the state machine at the applied index and compact the log, after the
        snapshot work under way (if any); :meth:`run` does it.

        :returns: the snapshot's metadata; ``None`` if nothing was applied since the last
            one or a received snapshot is being staged (it will replace this state).
        :raises ~replobj.errors.UnpicklableStateError: if an object's state cannot be
            pickled; the log is kept and :attr:`error` says why.
        :raises ~replobj.errors.StorageError: if the store failed (the node stops).
        :raises ~replobj.errors.NodeStoppedError: if the node stopped first.
        """
        if self._stopped:
            raise _stopped_error()
        request = _Request()
        self._requests.append(request)
        self._wanted.set()
        return await request.outcome()

    async def _take_requested(self) -> None:
        """Take a snapshot for the callers of :meth:`take` so far (later ones get the next)."""
        self._serving, self._requests = self._requests, []
        try:
            meta = await self._take()
        except (errors.UnpicklableStateError, errors.StorageError) as exc:
            for request in self._serving:
                request.finish(None, exc)
            self._serving = []
            if isinstance(exc, errors.StorageError):
                raise
            return
        for request in self._serving:
            request.finish(meta, None)
        self._serving = []

    async def _take_due(self) -> None:
        """Take the automatic snapshot; one that cannot be pickled waits for more entries."""
        applied = self._applied_here()
        try:
            await self._take()
        except errors.UnpicklableStateError as exc:
            self._retry_at = applied + self._options.snapshot_entries
            logger.error(
                "%s could not take a snapshot at index %d, keeping the log and trying "
                "again after %d more entries: %s",
                self._raft.id,
                applied,
                self._options.snapshot_entries,
                exc,
            )

    def give_way(self) -> None:
        """A received snapshot begins staging: drop the local one being written (the
        store would abort its writer anyway)."""
        if self._writer is not None:
            self._writer.abort()
            self._writer = None

    async def _take(self) -> SnapshotMeta | None:
        raft = self._raft
        applied = self._applied_here()
        if applied <= raft.snapshot.last_index or not self._may_begin():
            return None
        meta = raft.snapshot_meta_for(applied)
        counted = self._applied_bytes
        started = anyio.current_time()
        self._gate.close()
        try:
            data = await run_stoppable(self._snapshot)
        except errors.UnpicklableStateError as exc:
            self.error = str(exc)
            raise
        finally:
            self._gate.open()
        self.error = None
        pickled = anyio.current_time() - started
        if not await self._store(meta, data):
            return None
        raft.handle_snapshot_taken(meta)
        self._applied_bytes = max(0, self._applied_bytes - counted)
        self._kick()
        self.taken += 1
        self.last_bytes = len(data)
        self.last_seconds = anyio.current_time() - started
        logger.info(
            "%s took a snapshot at index %d (%d bytes, pickled in %.3fs, stored in %.3fs)",
            raft.id,
            applied,
            len(data),
            pickled,
            anyio.current_time() - started - pickled,
        )
        return meta

    async def _store(self, meta: SnapshotMeta, data: bytes) -> bool:
        """Write ``data`` as snapshot ``meta``, yielding to the loop between chunks.

        :returns: ``False`` if a received snapshot is being staged (it wins).
        """
        if not self._may_begin():
            return False
        writer = self._writer = self._storage.begin_snapshot(meta)
        chunk = self._options.snapshot_chunk_bytes
        try:
            for offset in range(0, len(data), chunk):
                if offset:
                    await anyio.lowlevel.checkpoint()
                    if self._writer is not writer:
                        return False
                writer.write_chunk(offset, data[offset : offset + chunk])
            writer.commit(keep_log=True)
        except BaseException:
            if self._writer is writer:
                writer.abort()
            raise
        finally:
            if self._writer is writer:
                self._writer = None
        return True
