"""The call path of a :class:`~replobj.node.Node`: commands through the log, and reads.

:class:`NodeCalls` is a base class of ``Node`` rather than a helper object so that a
call costs no extra indirection; ``Node.__init__`` sets the state it declares.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import anyio.lowlevel

from . import errors
from .call_room import CallRoom
from .command import Command, CommandOutcome, encode_command
from .metrics import LatencyHistogram
from .raft.types import ClusterConfig, LogIndex, NodeId
from .runtime import CallTicket, RaftRuntime
from .runtime_options import RuntimeOptions
from .statemachine import ApplyOutcome

FAIR_SLICE = 0.001
"""Seconds a task may run calls that need no round-trip before one of them yields."""


class NodeCalls:
    """Commands and linearizable reads of one node, with the client session they use."""

    id: NodeId
    call_timeout: float
    transport_kind: str
    max_command_bytes: int
    diverged: dict[str, errors.ClassMismatchError]
    _runtime: RaftRuntime | None
    _options: RuntimeOptions
    _client_id: bytes
    _next_seq: int
    _in_flight: set[int]
    _room: CallRoom
    _latency: LatencyHistogram
    """Seconds from a call to its outcome here, for ``metrics()``."""
    """The bound on :attr:`_in_flight` (``Node(max_pending_calls=...)``)."""
    _checked_names: set[tuple[str, str, str]]
    """(object, class, method) names a :class:`Command` has checked (see :meth:`new_command`)."""
    _lowest_seq: int = 1
    """No call below this sequence number is in flight (:meth:`_lowest_in_flight`)."""
    _restarted: bool
    _local_now_blocked: bool
    _member_of: ClusterConfig | None
    _local_due: float = 0.0
    """``time.monotonic()`` from which the next local read must yield (:data:`FAIR_SLICE`
    after a call of this node last yielded in :meth:`fair_checkpoint`)."""

    def _gate_local_now(self) -> None:
        """Fold what makes ``proxy.query.local_now()`` refuse, or check more, into the
        one flag its hot path reads: the node is stopped, it restarted and no local read
        has caught it up yet, or an object's replica here diverged. Called wherever one
        of those changes."""
        self._local_now_blocked = self._runtime is None or self._restarted or bool(self.diverged)

    @property
    def runtime(self) -> RaftRuntime:
        """The running runtime.

        :raises ~replobj.errors.NodeStoppedError: if the node is not running.
        """
        if self._runtime is None:
            raise errors.NodeStoppedError(
                f"node {self.id!r} is not running; use `async with node:` or await node.start()"
            )
        return self._runtime

    def local_read_waits(self) -> bool:
        """Whether the next local read must first await :meth:`local_read_ready`: the node
        is stopped or restarted, or more than :data:`FAIR_SLICE` passed since a call last
        yielded. Otherwise (the common case) the read runs at once, without a trip
        through the event loop. :meth:`~replobj.proxy.QueryMethod.local` inlines this."""
        return self._runtime is None or self._restarted or time.monotonic() >= self._local_due

    async def local_read_ready(self) -> None:
        """Make the next local read safe and fair.

        Before the first local read after a restart, catch up past what was served
        before: a restarted node rebuilds its state from its snapshot and log (a node
        started to join, perhaps after its directory was wiped, from nothing), so until it
        has applied what the cluster had committed its local state may be older than what
        it served before; one ReadIndex barrier closes that gap (local reads never go
        backwards on a node). Otherwise yield to the event loop (:meth:`fair_checkpoint`).

        :raises ~replobj.errors.NodeStoppedError: if the node is not running.
        """
        self.runtime  # noqa: B018 - fail fast with NodeStoppedError
        if self._restarted:
            await self.read_barrier()
            self._restarted = False
            self._gate_local_now()
        await self.fair_checkpoint()

    async def fair_checkpoint(self) -> None:
        """Yield to the event loop, so a loop of calls that need no round-trip (local
        reads, :meth:`wait_for_leader` with a known leader) cannot starve the node's own
        tasks: its heartbeats, its election timer, its receiving.

        A real checkpoint costs a trip through the event loop (several microseconds), far
        more than a local read, so callers on the hot path skip it while less than
        :data:`FAIR_SLICE` passed since the last one (see :meth:`local_read_waits`); a task
        looping on them then yields at least once a millisecond.
        """
        await anyio.lowlevel.checkpoint()
        self._local_due = time.monotonic() + FAIR_SLICE

    def _check_member(self) -> None:
        raft = self.runtime.raft
        config = raft.config
        if config is self._member_of:
            return
        if self.id in config.members:
            self._member_of = config
        elif config.members and raft.config_committed:
            raise errors.NodeRemovedError(
                f"node {self.id!r} was removed from the cluster (members: "
                f"{', '.join(sorted(config.members))}); stop it, or add it back from a member"
            )

    def check_object(self, name: str) -> None:
        """Refuse calls on an object whose replica here has diverged (a class mismatch).

        :raises ~replobj.errors.ClassMismatchError: if a command for ``name`` could not be
            applied here because another node attached a different class under ``name``.
        """
        error = self.diverged.get(name)
        if error is not None:
            raise errors.ClassMismatchError(str(error))

    def new_command(
        self, name: str, class_name: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Command, bytes]:
        """Build and encode the next command of this node's client session.

        Pass the command to :meth:`submit` as ``local`` only if
        :func:`~replobj.command.has_immutable_arguments` holds for it.

        :raises ~replobj.errors.UnpicklableArgumentError: if an argument cannot be pickled.
        """
        self._next_seq += 1
        seq = self._next_seq
        lowest = self._lowest_in_flight(seq)
        names = (name, class_name, method)
        owned = dict(kwargs) if kwargs else {}
        if names in self._checked_names and type(args) is tuple:
            cmd = Command.trusted(self._client_id, seq, names, args, owned, lowest)
        else:  # the first call of a method: every field checked once
            cmd = Command(self._client_id, seq, *names, args, owned, lowest_pending=lowest)
            self._checked_names.add(names)
        payload = encode_command(cmd)
        if len(payload) > self.max_command_bytes:
            raise errors.CommandTooLargeError(
                f"{name}.{method} encodes to {len(payload)} bytes but the {self.transport_kind} "
                f"transport carries at most {self.max_command_bytes}; pass smaller arguments"
            )
        self._in_flight.add(seq)
        return cmd, payload

    def finish_command(self, seq: int) -> None:
        """The caller received the outcome of ``seq`` (it may be forgotten by the sessions)."""
        in_flight = self._in_flight
        in_flight.discard(seq)
        room = self._room
        if room._queue:
            room.wake(len(in_flight))

    async def make_room(self, wanted: int, timeout: float | None, nowait: bool) -> float:
        """Wait until ``wanted`` more calls may be in flight (``Node(max_pending_calls=...)``)
        and return the seconds left of ``timeout`` (default: ``call_timeout``). The caller
        must then encode its calls (:meth:`new_command`) before it next yields.

        :raises ~replobj.errors.TooManyPendingCallsError: if ``nowait`` and there is no
            room now (nothing was sent).
        :raises ~replobj.errors.CallTimeoutError: if no room came in time (nothing was
            sent: ``outcome_known`` is true).
        """
        limit = timeout or self.call_timeout
        room = self._room
        if room.has_room(len(self._in_flight), wanted):
            return limit
        if nowait:
            raise errors.TooManyPendingCallsError(
                f"node {self.id!r} has {len(self._in_flight)} calls in flight and "
                f"{room.waiting} waiting for room (max_pending_calls={room.limit}); nothing "
                "was sent: retry later, let the call wait for room (the default), or raise "
                "max_pending_calls"
            )
        began = time.monotonic()
        if not await room.wait(lambda: len(self._in_flight), wanted, limit):
            raise errors.CallTimeoutError(
                f"the call found no room within {limit:.1f}s: node {self.id!r} had "
                f"max_pending_calls={room.limit} calls in flight all along; nothing was sent",
                outcome_known=True,
            )
        return max(limit - (time.monotonic() - began), 0.001)

    def _lowest_in_flight(self, seq: int) -> int:
        """The lowest sequence number in flight, ``seq`` (the next one) if none is.

        Sequence numbers are handed out in order, so the lowest one in flight only moves
        up: one pointer walks past each finished call once (no heap per call).
        """
        in_flight = self._in_flight
        low = self._lowest_seq
        while low < seq and low not in in_flight:
            low += 1
        self._lowest_seq = low
        return low

    async def submit(
        self, seq: int, payload: bytes, timeout: float | None, local: Command | None = None
    ) -> ApplyOutcome:
        """Get ``payload`` applied through the leader; the outcome is this replica's.

        Retries (same payload, hence same client sequence number: applied at most once)
        across leader changes until ``timeout``. ``local``, the command encoded in
        ``payload``, is applied here instead of the decoded payload; pass it only when
        its arguments are immutable (:func:`~replobj.command.has_immutable_arguments`).
        The payload may share its entry with other calls submitted at the same time: the
        outcome is the whole entry's (see :meth:`call_command` for this call's own).

        :raises ~replobj.errors.CallTimeoutError: if not applied in time.
        :raises ~replobj.errors.NodeRemovedError: if this node is no longer a member.
        """
        return (await self._applied_ticket(seq, payload, timeout, local))[1]

    async def call_command(
        self, cmd: Command, payload: bytes, timeout: float | None, local: Command | None = None
    ) -> CommandOutcome:
        """:meth:`submit` ``cmd`` (encoded as ``payload``) and return its own outcome.

        :raises ~replobj.errors.CallTimeoutError: if not applied in time.
        :raises ~replobj.errors.NodeRemovedError: if this node is no longer a member.
        """
        ticket, outcome = await self._applied_ticket(cmd.seq, payload, timeout, local)
        return self._own_outcome(cmd, ticket, outcome)

    async def call_command_at(
        self, cmd: Command, payload: bytes, timeout: float | None, local: Command | None = None
    ) -> tuple[CommandOutcome, LogIndex]:
        """:meth:`call_command`, with the index of the entry ``cmd`` was applied from."""
        ticket, outcome = await self._applied_ticket(cmd.seq, payload, timeout, local)
        return self._own_outcome(cmd, ticket, outcome), outcome.index

    async def wait_applied(self, index: int, timeout: float | None = None) -> LogIndex:
        """Wait until this member has applied the log up to ``index`` (from
        :meth:`~replobj.proxy.CommandMethod.indexed`, on this member or another) and
        return its applied index (at least ``index``).

        A local read after it sees every command applied up to ``index``: the way to read
        your own write on a follower without a linearizable read. It waits only for this
        member to catch up (no round trip); a checkpoint even when nothing needs waiting.

        :param index: a log index (``0``: return at once).
        :param timeout: seconds (default: the node's ``call_timeout``).
        :raises ~replobj.errors.ConfigurationError: if ``index`` is not an int >= 0.
        :raises ~replobj.errors.NodeStoppedError: if the node is not running.
        :raises ~replobj.errors.CallTimeoutError: if this member had not applied
            ``index`` in time (it may be partitioned away, or ``index`` may not exist
            yet); nothing changed.
        """
        if type(index) is not int or index < 0:
            raise errors.ConfigurationError(
                f"wait_applied(index): index must be an int >= 0 (a log index from "
                f"`await proxy.method.indexed(...)`), got {index!r}"
            )
        applied = self.runtime.applied
        if applied.index < index:
            limit = timeout or self.call_timeout
            with anyio.move_on_after(limit):
                await applied.wait_for(index)
            if applied.index < index:
                raise self._stalled_or(
                    errors.CallTimeoutError(
                        f"node {self.id!r} had applied up to index {applied.index}, not "
                        f"{index}, after {limit:.1f}s: it may be cut off from the leader, "
                        "or that index may not exist yet",
                        outcome_known=True,
                    )
                )
        else:
            await self.fair_checkpoint()
        return applied.index

    async def call_commands(
        self,
        cmds: list[Command],
        payloads: list[bytes],
        timeout: float | None,
        local: list[Command | None],
    ) -> list[CommandOutcome | errors.CallTimeoutError]:
        """Submit every command at once and return each one's own outcome, in order.

        They go to the leader together (packed into as few entries as fit) and are
        awaited together; a command not applied by ``timeout`` gets a
        :class:`~replobj.errors.CallTimeoutError` in its place (whose ``outcome_known``
        is its own). Retries, exactly-once and ``local`` are as for :meth:`call_command`.

        :raises ~replobj.errors.NodeRemovedError: if this node is no longer a member.
        """
        applied = await self._applied_tickets(cmds, payloads, timeout, local)
        return [
            self._own_outcome(cmd, *outcome) if isinstance(outcome, tuple) else outcome
            for cmd, outcome in zip(cmds, applied, strict=True)
        ]

    @staticmethod
    def _own_outcome(cmd: Command, ticket: CallTicket, outcome: ApplyOutcome) -> CommandOutcome:
        """``cmd``'s outcome out of its entry's (several commands may share one entry)."""
        if outcome.error is not None:
            return CommandOutcome(cmd.client_id, cmd.seq, error=outcome.error)
        commands = outcome.commands
        if ticket.position < len(commands):
            mine = commands[ticket.position]
            if (mine.seq == cmd.seq and mine.client_id == cmd.client_id) or not mine.client_id:
                return mine
        for mine in commands:  # pragma: no cover - the position always matches
            if mine.client_id == cmd.client_id and mine.seq == cmd.seq:
                return mine
        raise errors.ReplObjError(  # pragma: no cover - the state machine always answers
            f"the entry applied for {cmd.call} holds no outcome for it"
        )

    async def _applied_tickets(
        self,
        cmds: list[Command],
        payloads: list[bytes],
        timeout: float | None,
        local: list[Command | None],
    ) -> list[tuple[CallTicket, ApplyOutcome] | errors.CallTimeoutError]:
        """:meth:`_applied_ticket` for many payloads at once: each retried on its own."""
        limit = timeout or self.call_timeout
        deadline = time.monotonic() + limit
        attempt = 2 * self._options.election_timeout
        applied: list[tuple[CallTicket, ApplyOutcome] | None] = [None] * len(payloads)
        reached_log = [False] * len(payloads)
        pending = list(range(len(payloads)))
        try:
            self._check_member()
            while pending and (now := time.monotonic()) < deadline:
                runtime = self.runtime
                until = min(deadline, now + attempt)
                tickets = [runtime.submit(payloads[i], until, local[i]) for i in pending]
                for ticket in tickets:
                    if not ticket.done:
                        await ticket.waiter()
                refused, still = False, []
                for i, ticket in zip(pending, tickets, strict=True):
                    reached_log[i] = reached_log[i] or (ticket.sent and not ticket.refused)
                    if ticket.applied and isinstance(ticket.result, ApplyOutcome):
                        applied[i] = (ticket, ticket.result)
                    else:
                        still.append(i)
                        refused = refused or isinstance(ticket.error, errors.RaftRefusedError)
                pending = still
                if len(still) < len(tickets):
                    self._latency.observe(
                        time.monotonic() - deadline + limit, len(tickets) - len(still)
                    )
                if refused:
                    await self._wait_role_change()
                self._check_member()
        finally:
            for cmd in cmds:
                self.finish_command(cmd.seq)
        return [
            self._timed_out(limit, reached_log[i]) if outcome is None else outcome
            for i, outcome in enumerate(applied)
        ]

    async def _applied_ticket(
        self, seq: int, payload: bytes, timeout: float | None, local: Command | None
    ) -> tuple[CallTicket, ApplyOutcome]:
        limit = timeout or self.call_timeout
        deadline = time.monotonic() + limit
        attempt = 2 * self._options.election_timeout
        reached_log = False
        try:
            self._check_member()
            while (now := time.monotonic()) < deadline:
                ticket = self.runtime.submit(payload, min(deadline, now + attempt), local)
                await ticket.waiter()
                # Unknown once a leader may have appended it: sent and not explicitly refused.
                reached_log = reached_log or (ticket.sent and not ticket.refused)
                if ticket.applied and isinstance(ticket.result, ApplyOutcome):
                    self._latency.observe(time.monotonic() - deadline + limit)
                    return ticket, ticket.result
                if isinstance(ticket.error, errors.RaftRefusedError):
                    await self._wait_role_change()
                self._check_member()
        finally:
            self.finish_command(seq)
        raise self._timed_out(limit, reached_log)

    async def _wait_role_change(self) -> None:
        with anyio.move_on_after(self._options.heartbeat_interval * 2):
            await self.runtime.role_changed.wait()

    async def read_barrier(self, timeout: float | None = None) -> None:
        """Wait until this replica reflects every write committed before the call (ReadIndex).

        The reads that arrive together share one round (:mod:`replobj.read_rounds`): one
        request to the leader, one deadline, one wake-up source. A read needs no cancel
        scope of its own unless its ``timeout`` ends before its round's deadline.

        :raises ~replobj.errors.CallTimeoutError: if no leader confirmed a read in time.
        """
        self._check_member()
        limit = timeout or self.call_timeout
        deadline = time.monotonic() + limit
        while (now := time.monotonic()) < deadline:
            runtime = self.runtime
            try:
                joined = runtime.read_index()
            except (errors.NoLeaderError, errors.NotLeaderError):
                with anyio.move_on_after(min(2 * self._options.heartbeat_interval, deadline - now)):
                    await runtime.role_changed.wait()
                continue
            if joined.deadline <= deadline:  # the round ends first: it fails by itself
                index = await joined.outcome()
            else:
                with anyio.move_on_after(deadline - now):
                    index = await joined.outcome()
                if not joined.done:
                    break
            if isinstance(index, BaseException):
                continue  # not confirmed (leadership changed, or the request was lost)
            applied = runtime.applied
            if index > applied.index:
                with anyio.move_on_after(deadline - time.monotonic()):
                    await applied.wait_for(index)
                if index > applied.index:
                    break
            return
        raise self._stalled_or(
            errors.CallTimeoutError(
                f"no leader confirmed a linearizable read within {limit:.1f}s", outcome_known=True
            )
        )

    def _timed_out(self, limit: float, reached_log: bool) -> errors.CallTimeoutError:
        return self._stalled_or(_timeout_error(limit, reached_log))

    def _stalled_or(self, timeout: errors.CallTimeoutError) -> errors.CallTimeoutError:
        """``timeout``, or a :class:`~replobj.errors.ClusterStalledError` saying why no
        leader can be elected when this member has diagnosed a stall."""
        runtime = self._runtime
        stall = None if runtime is None else runtime.raft.status().stalled
        if stall is None:
            return timeout
        return errors.ClusterStalledError(
            f"{timeout}; the cluster is stalled: {stall.describe()}",
            outcome_known=timeout.outcome_known,
        )


def _timeout_error(limit: float, reached_log: bool) -> errors.CallTimeoutError:
    """The error of a command not applied within ``limit`` seconds."""
    return errors.CallTimeoutError(
        f"the call did not complete within {limit:.1f}s "
        + (
            "(a leader may have appended it: it may still apply, at most once)"
            if reached_log
            else "(no leader appended it: it did not and will not apply)"
        ),
        outcome_known=not reached_log,
    )
