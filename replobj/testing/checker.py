"""The linearizability checker: Wing & Gong's search with Lowe's memoisation, per partition.

Each sub-history becomes a doubly linked list of call and return events in real-time order (a
call and a return at the same instant count as concurrent). The candidates to linearize next
are the calls that precede the first return event still in the list. The search linearizes one
(the model must accept it in the current state), unlinks its call and return events, and looks
at the new head of the list; when no candidate fits, the operation of that first return event
can no longer be placed before the calls that follow it, so the search backtracks: it relinks
the last linearized operation and tries the next candidate at that position. Lowe's
improvement caches every (set of linearized operations, model state) pair already reached, so
no configuration is explored twice.

An operation with an unknown outcome has a call event and no return event: it may be
linearized anywhere after its call, and the search succeeds as soon as every operation with a
known outcome is linearized, leaving the rest out (they never took effect).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..errors import ReplObjError
from .history import Operation
from .model import Model, PartitionedModel, WitnessedModel
from .verdict import Candidate, Counterexample, Outcome, Verdict
from .witness import settle_unknown_writes

__all__ = ["DEFAULT_BUDGET", "DEFAULT_MEMORY_BUDGET", "ModelError", "check_history"]

DEFAULT_BUDGET = 60.0
"""Seconds :func:`check_history` may search before answering :attr:`Outcome.UNKNOWN`."""

DEFAULT_MEMORY_BUDGET = 1 << 30
"""Bytes of explored configurations one sub-history may keep before it is left undecided."""

_CONFIGURATION_OVERHEAD = 120

_BUDGET_CHECK_INTERVAL = 256
_PREFIX_SHOWN = 12

_HEAD = 0


class ModelError(ReplObjError, TypeError):
    """A model returned something the checker cannot use (for example an unhashable state)."""


class _BudgetExceeded(Exception):
    pass


class _MemoryBudgetExceeded(Exception):
    pass


class _Stuck:
    """The deepest point a failed search reached: the prefix and the state after it."""

    __slots__ = ("prefix", "state")

    def __init__(self, prefix: list[int], state: Any) -> None:
        self.prefix = prefix
        self.state = state


def check_history(
    history: Iterable[Operation],
    model: Model[Any],
    *,
    budget: float | None = DEFAULT_BUDGET,
    memory_budget: int | None = DEFAULT_MEMORY_BUDGET,
    partition: bool = True,
    settle_unknown: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> Verdict:
    """Decide whether ``history`` is linearizable with respect to ``model``.

    Sub-histories are searched smallest first, so one hard sub-history running out of budget
    does not keep the others from being decided.

    :param history: the recorded operations, in any order.
    :param model: the sequential specification; a :class:`~replobj.testing.PartitionedModel`
        is checked one sub-history at a time unless ``partition`` is false.
    :param budget: seconds to search in total before giving up with
        :attr:`~replobj.testing.Outcome.UNKNOWN`; ``None`` searches until decided.
    :param memory_budget: bytes (estimated) of explored configurations one sub-history may
        keep before it is left undecided: every configuration is remembered, at a cost of
        about one bit per operation of the sub-history plus the state; ``None`` for no limit.
    :param partition: whether to use the model's ``partition`` method, if it has one.
    :param settle_unknown: for a :class:`~replobj.testing.WitnessedModel`, settle writes of
        unknown outcome from what reads show before searching (same verdict, much faster;
        see :mod:`replobj.testing.witness`).
    :param clock: the clock that measures the budget (seconds).
    :raises ModelError: if the model's states are not hashable.
    """
    started = clock()
    deadline = None if budget is None else started + budget
    operations = list(history)
    searched = operations
    if settle_unknown and isinstance(model, WitnessedModel):
        searched = settle_unknown_writes(operations, model)
    if partition and isinstance(model, PartitionedModel):
        parts = [part for part in model.partition(searched) if part]
    else:
        parts = [searched] if searched else []
    origin = min((op.call_time for op in operations), default=0)
    counterexamples: list[Counterexample] = []
    undecided = 0
    by_size = sorted(range(len(parts)), key=lambda index: len(parts[index]))
    for position, index in enumerate(by_size):
        try:
            stuck = _search(parts[index], model, deadline, clock, memory_budget)
        except _MemoryBudgetExceeded:
            undecided += 1
            continue
        except _BudgetExceeded:
            undecided += len(parts) - position
            break
        if stuck is not None:
            counterexamples.append(_explain(index, parts[index], stuck, model, origin))
    counterexamples.sort(key=lambda example: example.partition)
    if counterexamples:
        outcome = Outcome.NOT_LINEARIZABLE
    elif undecided:
        outcome = Outcome.UNKNOWN
    else:
        outcome = Outcome.LINEARIZABLE
    return Verdict(
        outcome=outcome,
        operations=len(operations),
        unknown_outcome=sum(1 for op in operations if not op.outcome_known),
        partitions=len(parts),
        undecided=undecided,
        elapsed=clock() - started,
        counterexamples=tuple(counterexamples),
    )


class _EventList:
    """The call and return events of a sub-history as index-linked lists (dancing links).

    Node 0 is the head sentinel and the last node the tail sentinel; ``match`` maps a call node
    to its return node (``-1`` for an operation with an unknown outcome).
    """

    __slots__ = ("is_call", "match", "next_node", "node_op", "prev_node", "returns")

    def __init__(self, history: Sequence[Operation]) -> None:
        events: list[tuple[int, int, int]] = []
        for op_id, op in enumerate(history):
            events.append((op.call_time, 0, op_id))
            if op.return_time is not None:
                events.append((op.return_time, 1, op_id))
        events.sort()
        tail = len(events) + 1
        self.next_node = list(range(1, tail + 1))
        self.prev_node = [-1, *range(tail)]
        self.node_op = [-1] * (tail + 1)
        self.is_call = [False] * (tail + 1)
        self.match = [-1] * (tail + 1)
        self.returns = len(events) - len(history)
        call_node_of: dict[int, int] = {}
        for node, (_, kind, op_id) in enumerate(events, start=1):
            self.node_op[node] = op_id
            if kind == 0:
                self.is_call[node] = True
                call_node_of[op_id] = node
            else:
                self.match[call_node_of[op_id]] = node


def _search(
    history: Sequence[Operation],
    model: Model[Any],
    deadline: float | None,
    clock: Callable[[], float],
    memory_budget: int | None,
) -> _Stuck | None:
    """Search one sub-history; ``None`` if it is linearizable, else where the search stuck.

    At each position a first pass takes any candidate the model declares read-only and
    accepts: such a call can always be moved to the current position of a solution, so no
    alternative to it is ever tried. Otherwise the other candidates are tried earliest return
    first (an unknown outcome counts as returning when it was called): the call that must take
    effect soonest is the likeliest to come next, and trying it first cuts backtracking.
    """
    events = _EventList(history)
    next_node, prev_node, node_op = events.next_node, events.prev_node, events.node_op
    is_call, match = events.is_call, events.match
    step = model.step
    sizeof = sys.getsizeof
    calls = [(op.name, op.input, op.output) for op in history]
    read_only = _read_only_flags(history, model)
    urgency = [
        (op.call_time if op.return_time is None else op.return_time, op_id)
        for op_id, op in enumerate(history)
    ]
    state = model.init()
    linearized = 0
    remaining_returns = events.returns
    explored: set[tuple[int, Any]] = set()
    memory_used = 0
    # (linearized call node, state before it, alternatives left to try at that position)
    stack: list[tuple[int, Any, list[int]]] = []
    deepest: tuple[list[int], Any] = ([], state)
    alternatives: list[int] | None = None
    iterations = 0

    while remaining_returns:
        iterations += 1
        if deadline is not None and iterations % _BUDGET_CHECK_INTERVAL == 0 and clock() > deadline:
            raise _BudgetExceeded
        if alternatives is None:
            alternatives = []
            entry = next_node[_HEAD]
            dead_end = False
            while is_call[entry]:
                op_id = node_op[entry]
                if read_only[op_id]:
                    name, argument, output = calls[op_id]
                    accepted, new_state = step(state, name, argument, output)
                    if accepted:
                        dead_end = (linearized | (1 << op_id), new_state) in explored
                        alternatives = [entry]
                        break
                else:
                    alternatives.append(entry)
                entry = next_node[entry]
            if dead_end:
                alternatives = []
            elif len(alternatives) > 1:
                alternatives.sort(key=lambda node: urgency[node_op[node]], reverse=True)
        taken = False
        while alternatives:
            entry = alternatives.pop()
            op_id = node_op[entry]
            name, argument, output = calls[op_id]
            accepted, new_state = step(state, name, argument, output)
            if not accepted:
                continue
            configuration = (linearized | (1 << op_id), new_state)
            try:
                fresh = configuration not in explored
            except TypeError as error:
                raise ModelError(
                    f"{type(model).__name__} returned an unhashable state {new_state!r}; "
                    "states must be hashable and immutable (tuple, frozenset, ...)"
                ) from error
            if not fresh:
                continue
            explored.add(configuration)
            if memory_budget is not None:
                memory_used += (
                    _CONFIGURATION_OVERHEAD + sizeof(configuration[0]) + sizeof(new_state)
                )
                if memory_used > memory_budget:
                    raise _MemoryBudgetExceeded
            stack.append((entry, state, [] if read_only[op_id] else alternatives))
            linearized, state = configuration
            before, after = prev_node[entry], next_node[entry]
            next_node[before] = after
            prev_node[after] = before
            returned = match[entry]
            if returned >= 0:
                before, after = prev_node[returned], next_node[returned]
                next_node[before] = after
                prev_node[after] = before
                remaining_returns -= 1
            taken = True
            break
        if taken:
            alternatives = None
            continue
        if not stack:
            return _Stuck([node_op[node] for node in deepest[0]], deepest[1])
        if len(stack) > len(deepest[0]):
            deepest = ([item[0] for item in stack], state)
        entry, state, alternatives = stack.pop()
        linearized &= ~(1 << node_op[entry])
        returned = match[entry]
        if returned >= 0:
            next_node[prev_node[returned]] = returned
            prev_node[next_node[returned]] = returned
            remaining_returns += 1
        next_node[prev_node[entry]] = entry
        prev_node[next_node[entry]] = entry
    return None


def _read_only_flags(history: Sequence[Operation], model: Model[Any]) -> list[bool]:
    is_read_only = getattr(model, "is_read_only", None)
    if not callable(is_read_only):
        return [False] * len(history)
    return [bool(is_read_only(op.name, op.input, op.output)) for op in history]


def _explain(
    index: int,
    history: Sequence[Operation],
    stuck: _Stuck,
    model: Model[Any],
    origin: int,
) -> Counterexample:
    """Turn the deepest point of a failed search into a readable counterexample."""
    describe, describe_state = _renderers(model)
    in_prefix = set(stuck.prefix)
    remaining = [op_id for op_id in range(len(history)) if op_id not in in_prefix]
    deadline_id = min(
        (op_id for op_id in remaining if history[op_id].return_time is not None),
        key=lambda op_id: (history[op_id].return_time, op_id),
    )
    deadline = history[deadline_id]
    assert deadline.return_time is not None
    candidates: list[Candidate] = []
    for op_id in remaining:
        op = history[op_id]
        if op.call_time <= deadline.return_time:
            accepted, _ = model.step(stuck.state, op.name, op.input, op.output)
            candidates.append(Candidate(op, not accepted, describe(op)))

    def timed(op: Operation) -> str:
        returned = "?" if op.return_time is None else str(op.return_time - origin)
        return f"[t={op.call_time - origin}..{returned}] {describe(op)}"

    prefix = [history[op_id] for op_id in stuck.prefix]
    unknown = sum(1 for op in history if not op.outcome_known)
    lines = [
        f"sub-history {index} ({len(history)} operations, {unknown} with unknown outcome) "
        "is not linearizable.",
        f"Longest linearizable prefix found: {len(prefix)} of {len(history)} operations"
        + (":" if prefix else "."),
    ]
    if len(prefix) > _PREFIX_SHOWN:
        lines.append(f"  ... {len(prefix) - _PREFIX_SHOWN} earlier operations")
    lines.extend(f"  {timed(op)}" for op in prefix[-_PREFIX_SHOWN:])
    state = describe_state(stuck.state)
    lines.append(f"State after it: {state}")
    lines.append(
        f"None of the operations that may come next fits there. They are those invoked by "
        f"t={deadline.return_time - origin}, when {describe(deadline)} returned (it must "
        "precede everything invoked later):"
    )
    for candidate in candidates:
        why = (
            "the model rejects it in this state"
            if candidate.rejected
            else "accepted here, but then the remaining operations cannot be ordered"
        )
        lines.append(f"  {timed(candidate.operation)}: {why}")
    return Counterexample(
        partition=index,
        operations=len(history),
        prefix=tuple(prefix),
        state=state,
        candidates=tuple(candidates),
        deadline=deadline,
        explanation="\n".join(lines),
    )


def _renderers(
    model: Model[Any],
) -> tuple[Callable[[Operation], str], Callable[[Any], str]]:
    describe = getattr(model, "describe", None)
    describe_state = getattr(model, "describe_state", None)
    return (
        describe if callable(describe) else Operation.describe,
        describe_state if callable(describe_state) else repr,
    )
