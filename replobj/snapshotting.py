"""Snapshots for the runtime: taken locally, streamed to lagging followers, installed on receipt.

A snapshot is taken when the log since the last one passes
:attr:`~replobj.runtime_options.RuntimeOptions.snapshot_entries` (or ``snapshot_bytes``),
off the event loop (:mod:`replobj.snapshot_taker`); it is sent in chunks read back from
storage, and a received one is staged chunk by chunk, checked by decoding it into fresh
objects in a worker thread, and only then installed atomically (the commit runs in a
worker thread too, so the event loop keeps running). A snapshot that fails the check is
discarded and, after an election timeout, asked for again: the stored snapshot and log
stay as they were, so the node keeps serving and restarts on them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import anyio
import anyio.abc

from . import errors
from .pickling import StopFlag
from .raft import actions as act
from .raft.messages import InstallSnapshot as InstallSnapshotMessage
from .raft.node import RaftNode
from .raft.types import Entry, SnapshotMeta
from .runtime_options import RuntimeOptions
from .snapshot_taker import ApplyGate, SnapshotTaker
from .snapshot_thread import run_stoppable
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

_STAGING_IDLE = 2
"""Election timeouts without a chunk after which a received snapshot being staged counts as
abandoned (a leader change stops a transfer): a local snapshot may then replace it."""


def _ignore_entries(entries: tuple[Entry, ...]) -> None:
    """The apply callback of a keeper used without a runtime (nothing is applied)."""


class SnapshotKeeper:
    """The runtime's snapshot duties, against the same core, storage and transport.

    :param raft: the core.
    :param storage: the node's durable store (it holds the current snapshot).
    :param transport: where snapshot chunks are sent.
    :param snapshotter: the state machine's snapshot/restore.
    :param options: the snapshot threshold and chunk size.
    :param applied: the runtime's applied index, advanced past an installed snapshot.
    :param kick: asks the runtime to drain the core's actions soon.
    :param gate: where the runtime's committed entries wait while a snapshot is pickled
        (by default a gate that applies nothing: a keeper used without a runtime).
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
        *,
        gate: ApplyGate | None = None,
    ) -> None:
        self._raft = raft
        self._storage = storage
        self._transport = transport
        self._snapshotter = snapshotter
        self._options = options
        self._applied = applied
        self._kick = kick
        self._taker = SnapshotTaker(
            raft,
            storage,
            snapshotter.snapshot,
            options,
            applied,
            gate or ApplyGate(_ignore_entries),
            kick,
            self._may_begin_local,
        )
        """Takes the node's own snapshots (:mod:`replobj.snapshot_taker`)."""
        self._incoming: SnapshotWriter | None = None
        self._staged = bytearray()
        self._staged_at = 0.0
        """When the last chunk of the received snapshot being staged arrived."""
        self._refused: tuple[SnapshotMeta, float] | None = None
        self._refusals = 0
        """Snapshots refused in a row: each doubles the wait before asking again."""
        self.installed = 0
        """Snapshots received from a leader and installed since the runtime started."""

    @property
    def taker(self) -> SnapshotTaker:
        """Who takes the node's own snapshots (its counters are read by ``metrics()``)."""
        return self._taker

    @property
    def error(self) -> str | None:
        """Why the last snapshot failed (an object's state could not be pickled), or ``None``."""
        return self._taker.error

    def note_applied(self, entries: Sequence[Entry]) -> None:
        """Count the payload bytes of applied entries toward the next snapshot."""
        self._taker.note_applied(entries)

    def take_if_due(self) -> None:
        """Start a snapshot in the background (see :meth:`run`) if enough entries, or
        enough payload bytes, were applied since the last one (or failed one)."""
        self._taker.take_if_due()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Take the snapshots, automatic and asked for, until cancelled (a task of the
        runtime; :meth:`take` waits for it).

        :raises ~replobj.errors.StorageError: if the store failed (the node must stop).
        """
        await self._taker.run(task_status=task_status)

    async def take(self) -> SnapshotMeta | None:
        """Snapshot the state machine at the applied index and compact the log.

        :returns: ``None`` if nothing new was applied, or a received snapshot is being
            staged (it will replace this state).
        :raises ~replobj.errors.UnpicklableStateError: if an object's state cannot be
            pickled; the log is kept and :attr:`error` says why.
        :raises ~replobj.errors.StorageError: if the store failed (the node stops).
        :raises ~replobj.errors.NodeStoppedError: if :meth:`run` stopped first.
        """
        return await self._taker.take()

    def _may_begin_local(self) -> bool:
        """Whether a local snapshot may begin its writer: not while a received snapshot is
        being staged (it would abort that writer), unless that one stopped arriving."""
        writer = self._incoming
        if writer is None:
            return True
        idle = anyio.current_time() - self._staged_at
        if idle < _STAGING_IDLE * self._options.election_timeout:
            return False
        writer.abort()
        self._incoming, self._staged = None, bytearray()
        logger.warning(
            "%s dropped the snapshot at index %d it was receiving: no chunk for %.1fs "
            "(if it is sent again, it starts over)",
            self._raft.id,
            writer.meta.last_index,
            idle,
        )
        return True

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
        """Write a received chunk; a first chunk or another snapshot starts a new one.

        A later chunk of a snapshot whose start was dropped (:meth:`_may_begin_local`) is
        ignored: its install then asks the leader to start over.
        """
        writer = self._incoming
        if action.offset == 0 or writer is None or writer.meta != action.meta:
            if writer is not None:
                writer.abort()
                self._incoming = None
            if action.offset != 0:
                return
            self._taker.give_way()
            writer = self._incoming = self._storage.begin_snapshot(action.meta)
            self._staged = bytearray()
        writer.write_chunk(action.offset, action.data)
        del self._staged[action.offset :]
        self._staged += action.data
        self._staged_at = anyio.current_time()

    async def install(self, action: act.InstallSnapshot) -> None:
        """Check the staged snapshot in a fresh state (in a worker thread); if it is good,
        commit it and restore the state machine from it, else discard it (see
        :meth:`retry_if_due`). A local snapshot under way finishes first."""
        async with self._taker.turn:
            writer = self._incoming
            if writer is None or writer.meta != action.meta:
                self._raft.handle_snapshot_rejected(action.meta)  # its start was dropped
                self._kick()
                return
            self._incoming = None
            data, self._staged = bytes(self._staged), bytearray()
            try:
                checked = await run_stoppable(
                    lambda stop: self._snapshotter.check_snapshot(data, stop)
                )
            except errors.ReplObjError as exc:
                writer.abort()
                self._refuse(action.meta, exc)
                return
            except BaseException:
                writer.abort()
                raise
            await anyio.to_thread.run_sync(lambda: writer.commit(keep_log=action.keep_log))
            self._snapshotter.restore_checked(checked)
            self._raft.handle_snapshot_installed(action.meta)
            self._applied.advance(action.meta.last_index)
            self._taker.reset_progress()
            self._refusals = 0
            self.installed += 1
            logger.info(
                "%s installed a snapshot at index %d", self._raft.id, action.meta.last_index
            )
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
