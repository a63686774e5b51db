"""The runtime: drives one :class:`~replobj.raft.RaftNode` with real time, storage and network.

Rule of this module: it is the only place with tasks, clocks and I/O. It owns the core
and executes its actions in order, honouring their obligations:

* group commit — every ``AppendLog``/``SaveHardState``/``CompactLog`` of one drain goes
  into one storage batch; appends are synced by a background task (one fsync covers
  every batch written before it, in a worker thread so the event loop keeps running)
  and reported back with ``handle_log_persisted``; a hard-state change is synced before
  any message that follows it is sent;
* the single timer the core asks for (randomised election timeout, fixed heartbeat);
* snapshots: taken when the log since the last one passes a threshold, streamed to
  lagging followers in chunks, installed atomically on receipt.

It knows nothing of replicated objects: committed command entries go to an
``apply`` callback, snapshots to and from a :class:`Snapshotter`.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import anyio
import anyio.abc
import anyio.lowlevel

from . import errors
from .raft import actions as act
from .raft.messages import InstallSnapshot as InstallSnapshotMessage
from .raft.node import RaftNode
from .raft.types import (
    Entry,
    HardState,
    LogIndex,
    ProposalId,
    Refusal,
    RefusalReason,
    Role,
    SnapshotMeta,
)
from .storage.protocol import SnapshotWriter, Storage, WriteBatch
from .transport.base import Transport
from .waiting import Flag, IndexWaiters, Pending

logger = logging.getLogger("replobj")

_EAGER_BATCH = 128
"""Submissions that make the runtime send a batch at once rather than at its next drain."""

_EXPIRY_PERIOD = 0.02
"""Seconds between sweeps that fail call tickets past their deadline."""

_RECENT_OUTCOMES = 4096
"""Outcomes kept after applying, for callers whose proposal id arrives after the entry applied."""


class Snapshotter(Protocol):
    """What the runtime needs from the state machine to take and install snapshots."""

    def snapshot(self) -> bytes:
        """Serialise the whole applied state."""
        ...

    def restore(self, data: bytes) -> None:
        """Replace the applied state with ``data`` (from :meth:`snapshot` on some replica)."""
        ...


ApplyCallback = Callable[[Entry, object], object]
"""Applies one committed entry (of any kind, in log order); its return value resolves
the matching proposal. The second argument is the ``local`` object of the call ticket
whose proposal is that entry (same index and term), else ``None``."""


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    """Timing and snapshot settings of a node.

    The election timeout is drawn uniformly from ``[election_timeout, 2 *
    election_timeout)``; it must stay well above event-loop stalls (GC, big snapshots)
    or busy nodes call spurious elections.
    """

    election_timeout: float = 1.0
    heartbeat_interval: float = 0.1
    snapshot_entries: int = 20_000
    """Take a snapshot once this many entries were applied since the last one."""
    snapshot_chunk_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        if self.heartbeat_interval <= 0 or self.election_timeout <= self.heartbeat_interval:
            raise ValueError("need 0 < heartbeat_interval < election_timeout")
        if self.snapshot_entries < 1:
            raise ValueError("snapshot_entries must be at least 1")

    @property
    def election_ticks(self) -> int:
        """Heartbeats per election timeout (the core counts time in heartbeats)."""
        return max(2, math.ceil(self.election_timeout / self.heartbeat_interval))


class CallTicket:
    """One submitted command payload, from submission to its outcome on this node.

    ``proposal`` is set once a leader appended it (it reached the log). The ticket is
    done when the entry at that index was applied here (``applied`` tells whether it was
    this payload or another entry that won the index), or when the leader refused it
    (``error``).
    """

    __slots__ = (
        "_done",
        "applied",
        "deadline",
        "error",
        "local",
        "payload",
        "proposal",
        "refused",
        "result",
        "sent",
    )

    def __init__(self, payload: bytes, deadline: float, local: object = None) -> None:
        self.payload = payload
        self.deadline = deadline
        self.local = local
        """What the submitter knows of ``payload`` (passed to the apply callback)."""
        self.sent = False
        """Handed to the Raft core for a leader (it may have been appended from then on)."""
        self.refused = False
        """A leader (or this node) refused it: it was certainly not appended."""
        self.proposal: ProposalId | None = None
        self.applied = False
        self.result: object = None
        self.error: BaseException | None = None
        self._done = Flag()

    @property
    def done(self) -> bool:
        """Whether an outcome or an error is known."""
        return self._done.is_set

    def resolve(self, applied: bool, result: object) -> None:
        """The entry at the ticket's index was applied here."""
        if not self._done.is_set:
            self.applied, self.result = applied, result
            self._done.set()

    def fail(self, error: BaseException) -> None:
        """The payload was not appended (refused or the request was lost)."""
        if not self._done.is_set:
            self.error = error
            self._done.set()

    @property
    def expired(self) -> bool:
        """Done because its deadline passed (outcome unknown)."""
        return isinstance(self.error, TimeoutError)

    async def wait(self) -> None:
        """Return once :attr:`done`."""
        await self._done.wait()


class RaftRuntime:
    """Runs a Raft core against a storage and a transport until cancelled.

    :param raft: the core, restored from ``storage``.
    :param storage: the node's durable store.
    :param transport: started by the caller.
    :param apply: applies a committed COMMAND entry and returns its result.
    :param snapshotter: the state machine's snapshot/restore.
    :param options: timing and snapshot settings.
    :param seed: seed of the election-timeout jitter (tests); ``None`` for OS randomness.
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
    ) -> None:
        self.raft = raft
        self.storage = storage
        self.transport = transport
        self.options = options or RuntimeOptions()
        self._apply = apply
        self._snapshotter = snapshotter
        self._rng = random.Random(seed)
        self._kick = anyio.Event()
        self._sync_wanted = anyio.Event()
        self._timer_changed = anyio.Event()
        self._deadline = math.inf
        self._written: tuple[LogIndex, int] | None = None
        self._incoming: SnapshotWriter | None = None
        self._proposals: dict[LogIndex, tuple[int, CallTicket]] = {}
        self._submitted: list[CallTicket] = []
        self._backlog: list[act.Action] = []
        self._executing = False
        self._in_order: deque[CallTicket] = deque()
        self._deadlines: list[tuple[float, int, CallTicket]] = []
        self._counter = 0
        self._reads: dict[int, Pending[LogIndex]] = {}
        self._forwards: dict[int, list[CallTicket]] = {}
        self._next_request = 0
        self._recent: OrderedDict[LogIndex, tuple[int, object]] = OrderedDict()
        self.snapshot_error: str | None = None
        """Why the last snapshot failed (an object's state could not be pickled), or ``None``."""
        self._snapshot_retry_at: LogIndex = 0
        self.applied = IndexWaiters(raft.applied_index)
        self.role_changed = anyio.Event()
        self.failure: BaseException | None = None

    # ------------------------------------------------------------------ running

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Drive the node until cancelled; raises if storage fails (the node must stop)."""
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._receive_loop)
            tasks.start_soon(self._timer_loop)
            tasks.start_soon(self._sync_loop)
            tasks.start_soon(self._drive_loop)
            tasks.start_soon(self._expiry_loop)
            self.kick()
            task_status.started()

    def kick(self) -> None:
        """Ask the driver to drain the core's actions soon (after an input)."""
        self._kick.set()

    async def _drive_loop(self) -> None:
        while True:
            await self._kick.wait()
            self._kick = anyio.Event()
            self._flush_submissions()
            backlog, self._backlog = self._backlog, []
            self._executing = True
            try:
                await self._execute([*backlog, *self.raft.take_actions()])
            finally:
                self._executing = False
            self._maybe_snapshot()

    async def _receive_loop(self) -> None:
        while True:
            try:
                batch = await self.transport.receive_batch()
            except anyio.EndOfStream:
                return
            for message in batch:
                self.raft.handle_message(message)
            self.kick()

    async def _timer_loop(self) -> None:
        while True:
            delay = self._deadline - anyio.current_time()
            if delay > 0:
                with anyio.move_on_after(delay):
                    await self._timer_changed.wait()
                if self._timer_changed.is_set():
                    self._timer_changed = anyio.Event()
                    continue
            if anyio.current_time() >= self._deadline:
                self._deadline = math.inf
                self.raft.handle_timeout()
                self.kick()

    async def _sync_loop(self) -> None:
        while True:
            await self._sync_wanted.wait()
            self._sync_wanted = anyio.Event()
            target = self._written
            await self._sync()
            if target is not None:
                self.raft.handle_log_persisted(*target)
                self.kick()

    async def _sync(self) -> None:
        try:
            await anyio.to_thread.run_sync(self.storage.sync)
        except errors.StorageError as exc:
            self.failure = exc
            logger.critical("storage sync failed, stopping the node: %s", exc)
            raise

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
                last = action.entries[-1]
                self._written = (last.index, last.term)
            elif isinstance(action, act.SaveHardState):
                batch.set_hard_state(HardState(action.term, action.voted_for))
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
        self.storage.write(batch)
        if batch.operations:
            self._sync_wanted.set()

    def _flush_eagerly(self) -> None:
        """Send a large batch of submissions now instead of after every waiting task ran.

        Lets followers start on the first entries while this node still serves the rest
        of its callers. Only actions that need no waiting run here; anything else (a
        hard-state sync, a snapshot install) and everything after it is left, in order,
        for the drive loop.
        """
        if self._executing or self._backlog:
            return
        self._flush_submissions()
        actions = self.raft.take_actions()
        if any(isinstance(a, act.SaveHardState | act.InstallSnapshot) for a in actions):
            self._backlog = actions
            self.kick()
            return
        batch = WriteBatch()
        for action in actions:
            if isinstance(action, act.Send):
                self.transport.send(action.to, action.message)
            elif isinstance(action, act.AppendLog):
                batch.append(action.entries)
                last = action.entries[-1]
                self._written = (last.index, last.term)
            elif not isinstance(action, act.CompactLog):
                self._write(batch)
                batch = WriteBatch()
                self._execute_simple(action)
        self._write(batch)

    async def _execute_other(self, action: act.Action) -> None:
        if isinstance(action, act.InstallSnapshot):
            await self._install_snapshot(action)
        else:
            self._execute_simple(action)

    def _execute_simple(self, action: act.Action) -> None:
        """Every action but sends, log writes and snapshot installs (which need I/O order)."""
        if isinstance(action, act.ResetTimer):
            self._arm_timer(action.kind)
        elif isinstance(action, act.ApplyEntries):
            self._apply_entries(action.entries)
        elif isinstance(action, act.ReadReady):
            pending = self._reads.pop(action.request_id, None)
            if pending is not None:
                pending.set(action.read_index)
        elif isinstance(action, act.ReadFailed):
            pending = self._reads.pop(action.request_id, None)
            if pending is not None:
                pending.fail(errors.ReadFailedError(f"read not confirmed: {action.reason}"))
        elif isinstance(action, act.ProposalForwarded):
            for ticket, proposal in zip(
                self._forwards.pop(action.request_id, ()), action.proposals, strict=False
            ):
                self._register(ticket, proposal)
        elif isinstance(action, act.ProposalFailed):
            error = errors.error_for_refusal(Refusal(action.reason, action.message))
            for ticket in self._forwards.pop(action.request_id, ()):
                ticket.refused = True
                ticket.fail(error)
        elif isinstance(action, act.SendSnapshotChunk):
            self._send_snapshot_chunk(action)
        elif isinstance(action, act.WriteSnapshotChunk):
            self._stage_snapshot_chunk(action)
        elif isinstance(action, act.RoleChanged):
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

    def _arm_timer(self, kind: act.TimerKind) -> None:
        if kind is act.TimerKind.HEARTBEAT:
            delay = self.options.heartbeat_interval
        else:
            timeout = self.options.election_timeout
            delay = self._rng.uniform(timeout, 2 * timeout)
        self._deadline = anyio.current_time() + delay
        self._timer_changed.set()

    def _apply_entries(self, entries: tuple[Entry, ...]) -> None:
        proposals = self._proposals
        for entry in entries:
            proposal = proposals.pop(entry.index, None)
            if proposal is None:
                result = self._apply(entry, None)
            else:
                term, ticket = proposal
                ours = term == entry.term
                result = self._apply(entry, ticket.local if ours else None)
                ticket.resolve(ours, result)
            self._recent[entry.index] = (entry.term, result)
            if len(self._recent) > _RECENT_OUTCOMES:
                self._recent.popitem(last=False)
            self.applied.advance(entry.index)

    # ------------------------------------------------------------------ snapshots

    def _maybe_snapshot(self) -> None:
        applied = self.raft.applied_index
        if applied - self.raft.snapshot.last_index < self.options.snapshot_entries:
            return
        if applied < self._snapshot_retry_at:
            return
        try:
            self.take_snapshot()
        except errors.UnpicklableStateError as exc:
            self._snapshot_retry_at = applied + self.options.snapshot_entries
            logger.error(
                "%s could not take a snapshot at index %d, keeping the log and trying again "
                "after %d more entries: %s",
                self.raft.id,
                applied,
                self.options.snapshot_entries,
                exc,
            )

    def take_snapshot(self) -> SnapshotMeta | None:
        """Snapshot the state machine at the applied index and compact the log.

        :raises ~replobj.errors.UnpicklableStateError: if an object's state cannot be
            pickled; the log is kept and :attr:`snapshot_error` says why.
        """
        applied = self.raft.applied_index
        if applied <= self.raft.snapshot.last_index:
            return None
        meta = self.raft.snapshot_meta_for(applied)
        try:
            data = self._snapshotter.snapshot()
        except errors.UnpicklableStateError as exc:
            self.snapshot_error = str(exc)
            raise
        self.snapshot_error = None
        writer = self.storage.begin_snapshot(meta)
        chunk = self.options.snapshot_chunk_bytes
        for offset in range(0, len(data), chunk):
            writer.write_chunk(offset, data[offset : offset + chunk])
        writer.commit(keep_log=True)
        self.raft.handle_snapshot_taken(meta)
        self.kick()
        logger.info("%s took a snapshot at index %d (%d bytes)", self.raft.id, applied, len(data))
        return meta

    def _send_snapshot_chunk(self, action: act.SendSnapshotChunk) -> None:
        if self.storage.snapshot_meta() != action.meta:
            return
        data = self.storage.read_snapshot_chunk(action.offset, action.max_bytes)
        done = action.offset + len(data) >= self.storage.snapshot_size()
        message = InstallSnapshotMessage(
            action.term, action.sender, action.meta, action.offset, data, done, action.seq
        )
        self.transport.send(action.to, message)

    def _stage_snapshot_chunk(self, action: act.WriteSnapshotChunk) -> None:
        writer = self._incoming
        if action.offset == 0 or writer is None or writer.meta != action.meta:
            writer = self._incoming = self.storage.begin_snapshot(action.meta)
        writer.write_chunk(action.offset, action.data)

    async def _install_snapshot(self, action: act.InstallSnapshot) -> None:
        writer = self._incoming
        if writer is None or writer.meta != action.meta:
            return
        self._incoming = None
        await anyio.to_thread.run_sync(lambda: writer.commit(keep_log=action.keep_log))
        size = self.storage.snapshot_size()
        data = self.storage.read_snapshot_chunk(0, size)
        self._snapshotter.restore(data)
        self.raft.handle_snapshot_installed(action.meta)
        self.applied.advance(action.meta.last_index)
        logger.info("%s installed a snapshot at index %d", self.raft.id, action.meta.last_index)
        self.kick()

    # ------------------------------------------------------------------ requests

    def submit(self, payload: bytes, deadline: float, local: object = None) -> CallTicket:
        """Queue ``payload`` for the log; it goes to the leader with the next drain.

        Every payload submitted between two drains travels in one forwarded batch (or one
        ``propose_batch`` on the leader). The ticket fails with ``TimeoutError`` at
        ``deadline`` (``time.monotonic()`` seconds) if nothing happened by then, so callers
        need no cancel scope per call. ``local`` is handed to the apply callback with the
        entry this payload became.
        """
        ticket = CallTicket(payload, deadline, local)
        self._submitted.append(ticket)
        in_order = self._in_order
        if not in_order or in_order[-1].deadline <= deadline:
            in_order.append(ticket)
        else:
            self._counter += 1
            heapq.heappush(self._deadlines, (deadline, self._counter, ticket))
        if len(self._submitted) >= _EAGER_BATCH:
            self._flush_eagerly()
        self.kick()
        return ticket

    async def _expiry_loop(self) -> None:
        while True:
            await anyio.sleep(_EXPIRY_PERIOD)
            self._expire_tickets(time.monotonic())

    def _expire_tickets(self, now: float) -> None:
        """Fail tickets past their deadline; let go of finished ones so they can be freed.

        Most tickets arrive in deadline order (a FIFO, dropped from the front once done);
        the few that do not wait in a heap until their deadline.
        """
        in_order = self._in_order
        while in_order:
            ticket = in_order[0]
            if not ticket.done:
                if ticket.deadline > now:
                    break
                ticket.fail(TimeoutError("no outcome before the deadline"))
            in_order.popleft()
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            ticket = heapq.heappop(deadlines)[2]
            if not ticket.done:
                ticket.fail(TimeoutError("no outcome before the deadline"))

    def _flush_submissions(self) -> None:
        tickets = [t for t in self._submitted if not t.done]  # an expired ticket stays unsent
        self._submitted = []
        if not tickets:
            return
        self._next_request += 1
        request_id = self._next_request
        self._forwards[request_id] = tickets
        refusal = self.raft.forward_proposal(request_id, [t.payload for t in tickets])
        if refusal is not None:
            del self._forwards[request_id]
            error = errors.error_for_refusal(refusal)
            for ticket in tickets:
                ticket.refused = True
                ticket.fail(error)
            return
        for ticket in tickets:
            ticket.sent = True

    def _register(self, ticket: CallTicket, proposal: ProposalId) -> None:
        ticket.proposal = proposal
        if proposal.index <= self.applied.index:
            recent = self._recent.get(proposal.index)
            if recent is None:
                ticket.resolve(False, None)
            else:
                ticket.resolve(recent[0] == proposal.term, recent[1])
            return
        replaced = self._proposals.get(proposal.index)
        if replaced is not None:
            replaced[1].resolve(False, None)
        self._proposals[proposal.index] = (proposal.term, ticket)

    def _fail_forwards(self, reason: str) -> None:
        """The leader changed: forwarded batches without an answer may be lost; retry them."""
        if not self._forwards:
            return
        error = errors.NoLeaderError(Refusal(RefusalReason.NO_LEADER, reason))
        for tickets in self._forwards.values():
            for ticket in tickets:
                ticket.fail(error)
        self._forwards.clear()

    def read_index(self) -> Pending[LogIndex]:
        """Start a linearizable read; the pending value is the index to wait for.

        :raises ~replobj.errors.RaftRefusedError: if no leader is known.
        """
        self._next_request += 1
        request_id = self._next_request
        pending: Pending[LogIndex] = Pending()
        self._reads[request_id] = pending
        refusal = self.raft.read_index(request_id)
        if refusal is not None:
            del self._reads[request_id]
            raise errors.error_for_refusal(refusal)
        self.kick()
        return pending

    def forget(self, pending: Pending[LogIndex]) -> None:
        """Stop tracking a read whose caller gave up."""
        for request_id, candidate in list(self._reads.items()):
            if candidate is pending:
                del self._reads[request_id]

    @property
    def pending_tickets(self) -> int:
        """Call tickets still watched for their deadline (finished ones leave within a sweep)."""
        return len(self._in_order) + len(self._deadlines)

    @property
    def is_leader(self) -> bool:
        """Whether this node currently leads."""
        return self.raft.role is Role.LEADER
