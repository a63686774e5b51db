"""Call tickets: a submitted payload followed from submission to its outcome on this node.

:class:`TicketDesk` is the half of :class:`~replobj.runtime.RaftRuntime` that hands
out tickets: it batches submissions for the leader (packing the payloads of one batch
into shared entries), matches the proposals the leader reports to their tickets,
resolves them as their entries apply, and fails them at their deadline. It is a base
class rather than a helper object so that the per-call path costs no extra call.
"""

from __future__ import annotations

import heapq
import time
from asyncio import AbstractEventLoop
from asyncio import _get_running_loop as _running_asyncio_loop
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence

import anyio

from . import errors
from .raft.node import RaftNode
from .raft.types import Entry, LogIndex, ProposalId, Refusal, RefusalReason
from .waiting import Flag, IndexWaiters

_EAGER_BATCH = 128
"""Submissions that make the runtime send a batch at once rather than at its next drain."""

_EXPIRY_PERIOD = 0.02
"""Seconds between sweeps that fail call tickets past their deadline."""

_RECENT_ENTRIES = 4096
"""Outcomes kept after applying, for callers whose proposal id arrives after the entry applied."""
_RECENT_BYTES = 256 * 1024
"""Fewer are kept once their entries' payloads pass this size (packed entries hold many
outcomes each), but never fewer than :data:`_RECENT_MIN`."""
_RECENT_MIN = 64

ApplyCallback = Callable[[Entry, object], object]
"""Applies one committed entry (of any kind, in log order); its return value resolves
the matching proposal. The second argument is the ``local`` object of the call ticket
whose proposal is that entry (same index and term), else ``None``; for an entry packed
from several tickets' payloads, the tuple of their ``local`` objects in packing order."""

PayloadPacker = Callable[[Sequence[bytes]], bytes]
"""Combines several submitted payloads into one, never longer than they are together."""


class CallTicket(Flag):
    """One submitted command payload, from submission to its outcome on this node.

    ``proposal`` is set once a leader appended it (it reached the log). The ticket is
    done when the entry at that index was applied here (``applied`` tells whether it was
    this payload or another entry that won the index), or when the leader refused it
    (``error``). Payloads submitted together may share one entry: ``position`` is this
    payload's place in it, and ``result`` is the whole entry's. The ticket is its own
    :class:`~replobj.waiting.Flag`, set when done: one object per call, and the caller
    awaits :meth:`~replobj.waiting.Flag.waiter` directly.
    """

    __slots__ = (
        "_loop",
        "applied",
        "deadline",
        "error",
        "local",
        "payload",
        "position",
        "proposal",
        "refused",
        "result",
        "sent",
    )

    def __init__(
        self,
        payload: bytes,
        deadline: float,
        local: object = None,
        loop: AbstractEventLoop | None = None,
    ) -> None:
        self.is_set = False
        self._waiters = None
        self._loop = loop
        """The runtime's asyncio loop, if known (else looked up when a caller waits)."""
        self.payload = payload
        self.deadline = deadline
        self.local = local
        """What the submitter knows of ``payload`` (passed to the apply callback)."""
        self.sent = False
        """Handed to the Raft core for a leader (it may have been appended from then on)."""
        self.refused = False
        """A leader (or this node) refused it: it was certainly not appended."""
        self.proposal: ProposalId | None = None
        self.position = 0
        self.applied = False
        self.result: object = None
        self.error: BaseException | None = None

    @property
    def done(self) -> bool:
        """Whether an outcome or an error is known."""
        return self.is_set

    def resolve(self, applied: bool, result: object) -> None:
        """The entry at the ticket's index was applied here."""
        if not self.is_set:
            self.applied, self.result = applied, result
            self.set()

    def fail(self, error: BaseException) -> None:
        """The payload was not appended (refused or the request was lost)."""
        if not self.is_set:
            self.error = error
            self.set()

    def waiter(self) -> Awaitable[None]:
        """What to await until :attr:`done` (see :meth:`~replobj.waiting.Flag.waiter`)."""
        loop = self._loop
        return Flag.waiter(self) if loop is None else self.waiter_on(loop)

    @property
    def expired(self) -> bool:
        """Done because its deadline passed (outcome unknown)."""
        return isinstance(self.error, TimeoutError)


class TicketDesk:
    """Submissions, proposals and deadlines of call tickets (a base of the runtime).

    The runtime provides the core, the applied index, the apply callback, :meth:`kick`
    and :meth:`_flush_eagerly`, and hands the core's proposal actions to
    :attr:`_forwards` and :meth:`_register`.

    :param pack: combines the payloads of one flush into as few entries as fit in
        ``pack_limit`` bytes each (each such entry travels in its own forwarded request);
        ``None`` makes every payload an entry of its own.
    :param pack_limit: the largest combined payload.
    """

    raft: RaftNode
    applied: IndexWaiters
    _apply: ApplyCallback
    kick: Callable[[], None]
    drain_soon: Callable[[], None]
    _flush_eagerly: Callable[[], None]

    def __init__(self, pack: PayloadPacker | None = None, pack_limit: int = 0) -> None:
        self._pack = pack
        self._pack_limit = pack_limit
        self._proposals: dict[LogIndex, tuple[int, list[CallTicket]]] = {}
        self._submitted: list[CallTicket] = []
        self._in_order: deque[CallTicket] = deque()
        self._deadlines: list[tuple[float, int, CallTicket]] = []
        self._counter = 0
        self._forwards: dict[int, list[list[CallTicket]]] = {}
        self._next_request = 0
        self._recent: OrderedDict[LogIndex, tuple[int, object, int]] = OrderedDict()
        self._recent_bytes = 0
        self._loop: AbstractEventLoop | None = None
        """The asyncio loop the runtime runs on, once known (``None`` on trio)."""

    def submit(self, payload: bytes, deadline: float, local: object = None) -> CallTicket:
        """Queue ``payload`` for the log; it goes to the leader with the next drain.

        The payloads submitted between two drains travel together: packed into as few
        entries as fit (see :class:`TicketDesk`), or else as one forwarded batch (one
        ``propose_batch`` on the leader) of one entry each. The ticket fails with
        ``TimeoutError`` at ``deadline`` (``time.monotonic()`` seconds) if nothing happened
        by then, so callers need no cancel scope per call. ``local`` is handed to the apply
        callback with the entry this payload became.
        """
        ticket = CallTicket(payload, deadline, local, self._loop)
        self._submitted.append(ticket)
        in_order = self._in_order
        if not in_order or in_order[-1].deadline <= deadline:
            in_order.append(ticket)
        else:
            self._counter += 1
            heapq.heappush(self._deadlines, (deadline, self._counter, ticket))
        if len(self._submitted) >= _EAGER_BATCH:
            self._flush_eagerly()
        self.drain_soon()
        return ticket

    async def _expiry_loop(self) -> None:
        self._loop = _running_asyncio_loop()
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
        pack = self._pack
        if pack is None:
            self._forward([[t] for t in tickets], [t.payload for t in tickets])
            return
        limit = self._pack_limit
        group: list[CallTicket] = []
        size = 0
        for ticket in tickets:
            length = len(ticket.payload)
            if group and size + length > limit:
                self._forward_packed(group, pack)
                group, size = [], 0
            group.append(ticket)
            size += length
        self._forward_packed(group, pack)

    def _forward_packed(self, group: list[CallTicket], pack: PayloadPacker) -> None:
        if len(group) == 1:
            self._forward([group], [group[0].payload])
            return
        for position, ticket in enumerate(group):
            ticket.position = position
        self._forward([group], [pack([t.payload for t in group])])

    def _forward(self, groups: list[list[CallTicket]], payloads: list[bytes]) -> None:
        """Propose ``payloads`` through the leader; ``groups[i]`` are the tickets in payload i."""
        self._next_request += 1
        request_id = self._next_request
        self._forwards[request_id] = groups
        refusal = self.raft.forward_proposal(request_id, payloads)
        if refusal is not None:
            del self._forwards[request_id]
            error = errors.error_for_refusal(refusal)
            for group in groups:
                for ticket in group:
                    ticket.refused = True
                    ticket.fail(error)
            return
        for group in groups:
            for ticket in group:
                ticket.sent = True

    def _register(self, group: list[CallTicket], proposal: ProposalId) -> None:
        for ticket in group:
            ticket.proposal = proposal
        if proposal.index <= self.applied.index:
            recent = self._recent.get(proposal.index)
            applied, result = (
                (False, None) if recent is None else (recent[0] == proposal.term, recent[1])
            )
            for ticket in group:
                ticket.resolve(applied, result)
            return
        replaced = self._proposals.get(proposal.index)
        if replaced is not None:
            for ticket in replaced[1]:
                ticket.resolve(False, None)
        self._proposals[proposal.index] = (proposal.term, group)

    def _fail_forwards(self, reason: str) -> None:
        """The leader changed: forwarded batches without an answer may be lost; retry them."""
        if not self._forwards:
            return
        error = errors.NoLeaderError(Refusal(RefusalReason.NO_LEADER, reason))
        for groups in self._forwards.values():
            for group in groups:
                for ticket in group:
                    ticket.fail(error)
        self._forwards.clear()

    def _apply_entries(self, entries: tuple[Entry, ...]) -> None:
        proposals = self._proposals
        recent = self._recent
        for entry in entries:
            proposal = proposals.pop(entry.index, None)
            if proposal is None:
                result = self._apply(entry, None)
            else:
                term, group = proposal
                ours = term == entry.term
                if not ours:
                    local = None
                elif len(group) == 1:
                    local = group[0].local
                else:
                    local = tuple([t.local for t in group])
                result = self._apply(entry, local)
                for ticket in group:
                    ticket.resolve(ours, result)
            size = len(entry.payload)
            recent[entry.index] = (entry.term, result, size)
            self._recent_bytes += size
            while len(recent) > _RECENT_ENTRIES or (
                self._recent_bytes > _RECENT_BYTES and len(recent) > _RECENT_MIN
            ):
                self._recent_bytes -= recent.popitem(last=False)[1][2]
            self.applied.advance(entry.index)

    @property
    def pending_tickets(self) -> int:
        """Call tickets still watched for their deadline (finished ones leave within a sweep)."""
        return len(self._in_order) + len(self._deadlines)
