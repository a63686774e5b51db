"""The runtime: drives one :class:`~replobj.raft.RaftNode` with real time, storage and network.

Rule of this module (with its helpers below): it is the only place with tasks, clocks
and I/O. It owns the core and executes its actions in order, honouring their
obligations:

* group commit — every ``AppendLog``/``SaveHardState``/``CompactLog`` of one drain goes
  into one storage batch; appends are synced by one long-lived storage thread
  (:mod:`replobj.storage_thread`: one fsync covers every batch written before it, and
  the event loop keeps running) and reported back with ``handle_log_persisted``; a
  hard-state change is synced before any message that follows it is sent;
* few wake-ups per round trip: messages are handled, and the core's actions drained,
  in the task that received them (the transport calls :meth:`RaftRuntime._on_messages`)
  and likewise when a sync completes; only what must wait (a hard-state sync, a
  snapshot install) or arrives while the drive loop is busy goes through it;
* the single timer the core asks for (randomised election timeout, fixed heartbeat);
* snapshots: taken when the log since the last one passes a threshold (pickled in a
  worker thread while committed entries wait: :mod:`replobj.snapshot_taker`), streamed
  to lagging followers in chunks, installed atomically on receipt.

It knows nothing of replicated objects: committed command entries go to an
``apply`` callback, snapshots to and from a :class:`Snapshotter`. Its helpers, in
modules of their own: :mod:`replobj.tickets` (call tickets from submission to
outcome), :mod:`replobj.snapshotting` (taking, sending and installing snapshots) and
:mod:`replobj.runtime_options` (timing and snapshot settings).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Awaitable, Callable

import anyio
import anyio.abc
import anyio.lowlevel

from . import errors
from .metrics import RuntimeCounters
from .raft import actions as act
from .raft.messages import Message
from .raft.node import RaftNode
from .raft.types import Entry, LogIndex, Refusal, Role, SnapshotMeta
from .read_rounds import ReadRound, ReadRounds
from .runtime_options import RuntimeOptions
from .snapshot_taker import ApplyGate
from .snapshotting import SnapshotKeeper, Snapshotter
from .storage.protocol import AppendEntries, Storage, WriteBatch
from .storage_thread import StorageSyncer, Target, loop_caller
from .tickets import ApplyCallback, CallTicket, PayloadPacker, TicketDesk
from .transport.base import Transport
from .waiting import IndexWaiters

__all__ = [
    "ApplyCallback",
    "CallTicket",
    "RaftRuntime",
    "RuntimeOptions",
    "Snapshotter",
]

logger = logging.getLogger("replobj")


class RaftRuntime(TicketDesk):
    """Runs a Raft core against a storage and a transport until cancelled.

    :param raft: the core, restored from ``storage``.
    :param storage: the node's durable store.
    :param transport: started by the caller.
    :param apply: applies a committed COMMAND entry and returns its result.
    :param snapshotter: the state machine's snapshot/restore.
    :param options: timing and snapshot settings.
    :param seed: seed of the election-timeout jitter (tests); ``None`` for OS randomness.
    :param pack: combines the payloads submitted together into one entry (see
        :class:`~replobj.tickets.TicketDesk`); ``None``: one entry per payload.
    :param pack_limit: the largest combined payload, in bytes.
    """

    def __init__(
        self,
        raft: RaftNode,
        storage: Storage,
        transport: Transport,
        apply: ApplyCallback,
        snapshotter: Snapshotter,
        options: RuntimeOptions | None = None,
        *,
        seed: int | None = None,
        pack: PayloadPacker | None = None,
        pack_limit: int = 0,
    ) -> None:
        super().__init__(pack, pack_limit)
        self.raft = raft
        self.storage = storage
        self.transport = transport
        self.options = options or RuntimeOptions()
        self._apply = apply
        self._rng = random.Random(seed)
        self._kick = anyio.Event()
        self._syncer = StorageSyncer(storage, self._on_synced, f"replobj-sync-{raft.id}")
        self._timer_changed = anyio.Event()
        self._deadline = math.inf
        self._sleeping_until = math.inf
        """The deadline the timer loop sleeps until (a later one needs no wake-up)."""
        self._written: tuple[LogIndex, int] | None = None
        self._call_soon: Callable[[Callable[[], object]], object] | None = None
        self._drain_scheduled = False
        self._now: Callable[[], float] = anyio.current_time
        """The event loop's clock (``anyio.current_time``, without its look-up per call)."""
        self._backlog: list[act.Action] = []
        self._executing = False
        self._reads = ReadRounds(raft, 2 * self.options.election_timeout)
        self.applied = IndexWaiters(raft.applied_index)
        self._committed = ApplyGate(self._apply_committed)
        """Committed entries on their way to the state machine (held during a snapshot)."""
        self._snapshots = SnapshotKeeper(
            raft,
            storage,
            transport,
            snapshotter,
            self.options,
            self.applied,
            self.kick,
            gate=self._committed,
        )
        """Takes, sends and installs snapshots."""
        self.role_changed = anyio.Event()
        self.counters = RuntimeCounters()
        """Elections and leader changes seen (read by ``node.metrics()``)."""
        self.failure: BaseException | None = None
        self._failed = anyio.Event()

    # ------------------------------------------------------------------ running

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Drive the node until cancelled; raises if storage fails (the node must stop)."""
        self._syncer.start()
        self._call_soon = loop_caller(threadsafe=False)
        self._now = _clock()
        try:
            async with anyio.create_task_group() as tasks:
                if not self.transport.set_receiver(self._on_messages):
                    tasks.start_soon(self._receive_loop)
                tasks.start_soon(self._timer_loop)
                tasks.start_soon(self._until_storage_fails, self._drive_loop)
                tasks.start_soon(self._expiry_loop)
                tasks.start_soon(self._snapshot_loop)
                tasks.start_soon(self._stop_on_failure)
                self.kick()
                task_status.started()
        finally:
            self._call_soon = None  # a drain already scheduled finds it gone and does nothing
            self._reads.close()  # nothing else would end the rounds' readers
            self.transport.set_receiver(None)
            await self._syncer.stop()

    def kick(self) -> None:
        """Ask the driver to drain the core's actions soon (after an input)."""
        self._kick.set()

    async def _drive_loop(self) -> None:
        while True:
            await self._kick.wait()
            if self.failure is not None:
                raise self.failure
            self._kick = anyio.Event()
            self._flush_submissions()
            backlog, self._backlog = self._backlog, []
            self._executing = True
            try:
                actions = self.raft.take_actions(defer_commit_push=True)
                await self._execute([*backlog, *actions])
            finally:
                self._executing = False
            self._push_commit_soon()
            self._snapshots.take_if_due()
            self._snapshots.retry_if_due()

    async def _snapshot_loop(self) -> None:
        try:
            await self._snapshots.run()
        except errors.StorageError as exc:
            self._storage_failed(exc, "write a snapshot")

    async def _receive_loop(self) -> None:
        while True:
            try:
                batch = await self.transport.receive_batch()
            except anyio.EndOfStream:
                return
            for message in batch:
                self.raft.handle_message(message)
            self.kick()

    def _on_messages(self, batch: list[Message]) -> None:
        """Handle messages in the transport's task that read them, and drain at once."""
        try:
            handle = self.raft.handle_message
            for message in batch:
                handle(message)
        except Exception as exc:
            self._fail_unexpectedly(exc)
            return
        self._drain_now()

    def _drain_now(self, *, defer_commit_push: bool = True) -> None:
        """Execute the core's actions here and now, or leave them to the drive loop.

        The drive loop takes them when it is busy (it may be waiting inside a drain) or
        holds a backlog, so actions always run in order. An unexpected error stops the
        node as a storage failure does (it is raised by :meth:`_stop_on_failure`).
        """
        if self._executing or self._backlog or self.failure is not None:
            self.kick()
            return
        try:
            self._flush_now(defer_commit_push=defer_commit_push)
            self._push_commit_soon()
            self._snapshots.take_if_due()
            self._snapshots.retry_if_due()
        except errors.StorageError:
            pass  # recorded by _storage_failed: the node stops
        except Exception as exc:
            self._fail_unexpectedly(exc)

    def _fail_unexpectedly(self, exc: Exception) -> None:
        """Stop the node after a bug met outside its own tasks (raised by _stop_on_failure)."""
        logger.error("%s: handling messages failed", self.raft.id, exc_info=exc)
        if self.failure is None:
            self.failure = exc
        self._failed.set()

    async def _timer_loop(self) -> None:
        """Wait for the deadline; a later deadline does not wake it, an earlier one does.

        Every message from the leader pushes the election deadline back: waking up for
        each would cost several loop iterations per message, so the loop sleeps until the
        deadline it knew and then, if the deadline moved later, sleeps on.
        """
        while True:
            now = self._now()
            if now >= self._deadline:
                self._deadline = self._sleeping_until = math.inf
                self.raft.handle_timeout()
                self._drain_now()
                continue
            self._sleeping_until = self._deadline
            with anyio.move_on_after(self._deadline - now):
                await self._timer_changed.wait()
            if self._timer_changed.is_set():
                self._timer_changed = anyio.Event()

    def _on_synced(self, target: Target, error: BaseException | None) -> None:
        """A sync by the storage thread ended (on the event loop): report and drain."""
        if error is not None:
            if isinstance(error, errors.StorageError):
                self._storage_failed(error, "sync")
            elif isinstance(error, Exception):
                self._fail_unexpectedly(error)
            return
        if self.failure is not None:
            return  # a write failed meanwhile: nothing may count as persisted
        if target is not None:
            self.raft.handle_log_persisted(*target)
            self._drain_now()

    async def _sync(self) -> None:
        try:
            await anyio.to_thread.run_sync(self.storage.sync)
        except errors.StorageError as exc:
            raise self._storage_failed(exc, "sync") from exc

    def _storage_failed(self, exc: errors.StorageError, action: str) -> BaseException:
        """Record and log a fatal storage failure (the first one); the node then stops."""
        if self.failure is None:
            self.failure = errors.StorageError(
                f"node {self.raft.id!r} stopped: its storage could not {action} ({exc}). "
                "What it had not synced may be lost, so it must not carry on: fix the disk "
                "(free space; for I/O errors check the device: dmesg, SMART), then restart "
                "the node on the same data directory; it catches up from the others"
            )
            logger.critical("%s", self.failure)
        self._failed.set()
        return self.failure

    async def _until_storage_fails(self, loop: Callable[[], Awaitable[None]]) -> None:
        """Run ``loop``; a storage failure is raised once, by :meth:`_stop_on_failure`."""
        try:
            await loop()
        except errors.StorageError as exc:
            if exc is not self.failure:
                raise

    async def _stop_on_failure(self) -> None:
        """Stop the runtime once storage failed, wherever (a caller's eager flush too)."""
        await self._failed.wait()
        assert self.failure is not None
        raise self.failure

    # ------------------------------------------------------------------ actions

    async def _execute(self, actions: list[act.Action]) -> None:
        batch = WriteBatch()
        hard_state_unsynced = False
        for action in actions:
            if isinstance(action, act.Send):
                if hard_state_unsynced:
                    self._write(batch)
                    batch = WriteBatch()
                    await self._sync()
                    hard_state_unsynced = False
                self.transport.send(action.to, action.message)
            elif isinstance(action, act.AppendLog):
                batch.append(action.entries)
            elif isinstance(action, act.SaveHardState):
                batch.set_hard_state(action.hard_state)
                hard_state_unsynced = True
            elif isinstance(action, act.CompactLog):
                pass  # committing the snapshot already compacted the stored log
            else:
                if isinstance(action, act.ApplyEntries) and batch.operations:
                    self._write(batch)
                    batch = WriteBatch()
                    await anyio.lowlevel.checkpoint()  # let the fsync start before applying
                self._write(batch)
                batch = WriteBatch()
                await self._execute_other(action)
        self._write(batch)
        if hard_state_unsynced:
            await self._sync()

    def _write(self, batch: WriteBatch) -> None:
        if not batch:
            return
        if self.failure is not None:
            raise self.failure
        try:
            self.storage.write(batch)
        except errors.StorageError as exc:
            raise self._storage_failed(exc, "write") from exc
        appended = [op for op in batch.operations if isinstance(op, AppendEntries)]
        if appended:
            last = appended[-1].entries[-1]
            self._written = (last.index, last.term)  # only once it is really written
        if batch.operations:
            self._syncer.request(self._written)

    def _flush_eagerly(self) -> None:
        """Send a large batch of submissions now instead of after every waiting task ran.

        Lets followers start on the first entries while this node still serves the rest
        of its callers. Only actions that need no waiting run here; anything else (a
        hard-state sync, a snapshot install) and everything after it is left, in order,
        for the drive loop. A failed write here (in a caller's task) stops the node
        (:meth:`_storage_failed` records it and :meth:`_stop_on_failure` raises it), and
        nothing written after it counts as persisted.
        """
        if self._executing or self._backlog or self.failure is not None:
            return
        with contextlib.suppress(errors.StorageError):  # recorded: the node stops
            self._flush_now()
            self._push_commit_soon()

    def drain_soon(self) -> None:
        """Drain once the tasks that are ready now have run (one loop callback, not a
        wake-up of the drive loop task): a submitted call, or a commit to push.

        Everything submitted until then travels together. A leader's commit push waits
        here too: a caller woken by the commit usually submits its next call at once,
        and the entry for it then carries the commit index, so the push (an empty
        AppendEntries per follower) is saved; otherwise the push goes right after.
        """
        if self._drain_scheduled:
            return
        call_soon = self._call_soon
        if call_soon is None:
            self.kick()
            return
        self._drain_scheduled = True
        call_soon(self._scheduled_drain)

    def _scheduled_drain(self) -> None:
        self._drain_scheduled = False
        if self._call_soon is not None:  # else the runtime stopped
            self._drain_now(defer_commit_push=False)

    def _push_commit_soon(self) -> None:
        if self.raft.commit_push_due:
            self.drain_soon()

    def _flush_now(self, *, defer_commit_push: bool = True) -> None:
        """Execute the actions that need no waiting (sends, log writes, the rest); hand
        the whole list to the drive loop if one must wait (a hard-state sync, a snapshot
        install). Runs several times per call on every member: kept lean."""
        if self._submitted or self._reads.has_open:
            self._flush_submissions()
        actions = self.raft.take_actions(defer_commit_push=defer_commit_push)
        if not actions:
            return
        for action in actions:
            if type(action) in _WAITING_ACTIONS:
                self._backlog = actions
                self.kick()
                return
        batch: WriteBatch | None = None
        send = self.transport.send
        for action in actions:
            if type(action) is act.Send:
                send(action.to, action.message)
            elif type(action) is act.AppendLog:
                if batch is None:
                    batch = WriteBatch()
                batch.append(action.entries)
            elif type(action) is not act.CompactLog:
                if batch is not None:
                    self._write(batch)
                    batch = None
                self._execute_simple(action)
        if batch is not None:
            self._write(batch)

    async def _execute_other(self, action: act.Action) -> None:
        if isinstance(action, act.InstallSnapshot):
            await self._snapshots.install(action)
        else:
            self._execute_simple(action)

    def _execute_simple(self, action: act.Action) -> None:
        """Every action but sends, log writes and snapshot installs (which need I/O order)."""
        if isinstance(action, act.ResetTimer):
            self._arm_timer(action.kind)
        elif isinstance(action, act.ApplyEntries):
            self._committed.apply(action.entries)
        elif isinstance(action, act.ReadReady):
            self._reads.ready(action.request_id, action.read_index)
        elif isinstance(action, act.ReadFailed):
            self._reads.failed(action.request_id, action.reason)
        elif isinstance(action, act.ProposalForwarded):
            for group, proposal in zip(
                self._forwards.pop(action.request_id, ()), action.proposals, strict=False
            ):
                self._register(group, proposal)
        elif isinstance(action, act.ProposalFailed):
            error = errors.error_for_refusal(Refusal(action.reason, action.message))
            for group in self._forwards.pop(action.request_id, ()):
                for ticket in group:
                    ticket.refused = True
                    ticket.fail(error)
        elif isinstance(action, act.SendSnapshotChunk):
            self._snapshots.send_chunk(action)
        elif isinstance(action, act.WriteSnapshotChunk):
            self._snapshots.stage_chunk(action)
        elif isinstance(action, act.ElectionStalled):  # the core reports changes only
            if action.stall is None:
                logger.warning("%s: the election stall is over", self.raft.id)
            else:
                logger.error("%s: CLUSTER STALLED: %s", self.raft.id, action.stall.describe())
        elif isinstance(action, act.RoleChanged):
            self._count_role_change(action)
            logger.info(
                "%s is %s in term %d (leader: %s)",
                self.raft.id,
                action.role.value,
                action.term,
                action.leader or "unknown",
            )
            self._fail_forwards(f"leadership changed (leader: {action.leader or 'unknown'})")
            self.role_changed.set()
            self.role_changed = anyio.Event()

    def _count_role_change(self, action: act.RoleChanged) -> None:
        counters = self.counters
        if action.role is Role.CANDIDATE:
            counters.elections += 1
        leader = action.leader
        if leader is not None and leader != counters.last_leader:
            if counters.last_leader is not None:
                counters.leader_changes += 1
            counters.last_leader = leader

    @property
    def snapshot_counters(self) -> tuple[int, int, int, float]:
        """Snapshots taken, installed, and the size and seconds of the last one taken."""
        taker = self._snapshots.taker
        return taker.taken, self._snapshots.installed, taker.last_bytes, taker.last_seconds

    def _apply_committed(self, entries: tuple[Entry, ...]) -> None:
        self._apply_entries(entries)
        self._snapshots.note_applied(entries)

    def _arm_timer(self, kind: act.TimerKind) -> None:
        if kind is act.TimerKind.HEARTBEAT:
            delay = self.options.heartbeat_interval
        else:
            timeout = self.options.election_timeout
            delay = self._rng.uniform(timeout, 2 * timeout)
        self._deadline = deadline = self._now() + delay
        if deadline < self._sleeping_until:
            self._timer_changed.set()

    # ------------------------------------------------------------------ snapshots

    async def take_snapshot(self) -> SnapshotMeta | None:
        """Snapshot the state machine at the applied index and compact the log (after the
        snapshot work under way, if any; committed entries wait while it is pickled).

        :returns: ``None`` if nothing new was applied or a received snapshot is on its way.
        :raises ~replobj.errors.UnpicklableStateError: if an object's state cannot be
            pickled; the log is kept and :attr:`snapshot_error` says why.
        :raises ~replobj.errors.StorageError: if the store failed (the node stops).
        :raises ~replobj.errors.NodeStoppedError: if the node stopped first.
        """
        return await self._snapshots.take()

    @property
    def snapshot_error(self) -> str | None:
        """Why the last snapshot failed (an object's state could not be pickled), or ``None``."""
        return self._snapshots.error

    # ------------------------------------------------------------------ reads

    def read_index(self) -> ReadRound:
        """Join the open round of linearizable reads (:mod:`replobj.read_rounds`); its
        value is the index to wait for; it fails by itself if no answer comes in time.

        :raises ~replobj.errors.RaftRefusedError: if no leader is known.
        :raises ~replobj.errors.NodeStoppedError: if the runtime stopped.
        """
        joined, opened = self._reads.join()
        if opened:
            self.kick()
        return joined

    def _flush_submissions(self) -> None:
        """Hand the open read round and the queued payloads to the core (each drain)."""
        if self._reads.has_open:
            self._next_request += 1
            self._reads.flush(self._next_request)
        super()._flush_submissions()

    def _expire_tickets(self, now: float) -> None:
        super()._expire_tickets(now)
        self._reads.expire(now)

    @property
    def is_leader(self) -> bool:
        """Whether this node currently leads."""
        return self.raft.role is Role.LEADER


_WAITING_ACTIONS: frozenset[type[act.Action]] = frozenset({act.SaveHardState, act.InstallSnapshot})
"""Actions after which the drive loop must wait (a sync, an install) before going on."""


def _clock() -> Callable[[], float]:
    """The running loop's clock, the one ``anyio.current_time`` reads (asyncio's
    ``loop.time`` directly: anyio asks sniffio which library runs on every call)."""
    try:
        return asyncio.get_running_loop().time
    except RuntimeError:
        return anyio.current_time
