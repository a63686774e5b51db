"""The checker's answer: linearizable, not linearizable (with a counterexample), or unknown."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .history import Operation

__all__ = ["Candidate", "Counterexample", "Outcome", "Verdict"]


class Outcome(enum.Enum):
    """What the checker concluded about a whole history."""

    LINEARIZABLE = "linearizable"
    """Some order of the calls, consistent with real time, satisfies the model."""
    NOT_LINEARIZABLE = "not linearizable"
    """No such order exists: at least one :class:`Counterexample` says where the search stuck."""
    UNKNOWN = "unknown"
    """The time or memory budget ran out before some sub-history was decided."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """An operation that could have come right after the longest linearizable prefix.

    :param operation: the operation.
    :param rejected: ``True`` if the model refuses it in the state after the prefix; ``False``
        if the model accepts it there but no order of the remaining operations works after it.
    :param rendered: the operation as the model describes it.
    """

    operation: Operation
    rejected: bool
    rendered: str


@dataclass(frozen=True, slots=True)
class Counterexample:
    """Where the search for a linearization of one sub-history got stuck.

    The longest prefix the search linearized is real (the model accepts it, in an order
    consistent with real time), yet none of the operations that may come next fits after it,
    and :attr:`deadline` must be linearized before any operation invoked after it returned.

    :param partition: index of the sub-history (in the model's partition order).
    :param operations: how many operations the sub-history has.
    :param prefix: the longest linearizable prefix found, in linearization order.
    :param state: the model state after that prefix, rendered.
    :param candidates: the operations that could come next, none of which leads to a solution.
    :param deadline: the earliest-returning operation outside the prefix.
    :param explanation: all of the above as readable text.
    """

    partition: int
    operations: int
    prefix: tuple[Operation, ...]
    state: str
    candidates: tuple[Candidate, ...]
    deadline: Operation
    explanation: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """The result of :func:`~replobj.testing.check_history`.

    :param outcome: the conclusion; :attr:`ok` is true only for a proven linearizable history.
    :param operations: operations checked (completed and unknown-outcome ones).
    :param unknown_outcome: how many of them had an unknown outcome.
    :param partitions: how many independent sub-histories the model split the history into.
    :param undecided: sub-histories left undecided when the time or memory budget ran out.
    :param elapsed: seconds spent checking.
    :param counterexamples: one per non-linearizable sub-history (empty when :attr:`ok`).
    """

    outcome: Outcome
    operations: int
    unknown_outcome: int
    partitions: int
    undecided: int
    elapsed: float
    counterexamples: tuple[Counterexample, ...]

    @property
    def ok(self) -> bool:
        """Whether the history is proven linearizable."""
        return self.outcome is Outcome.LINEARIZABLE

    def explain(self) -> str:
        """A readable summary, with every counterexample when the history is not linearizable."""
        head = (
            f"{self.outcome.value}: {self.operations} operations "
            f"({self.unknown_outcome} with unknown outcome) in {self.partitions} "
            f"sub-histor{'y' if self.partitions == 1 else 'ies'}, "
            f"checked in {self.elapsed:.3f} s"
        )
        if self.undecided:
            head += f"; {self.undecided} undecided when the time or memory budget ran out"
        return "\n\n".join([head, *(example.explanation for example in self.counterexamples)])

    def __str__(self) -> str:
        return self.explain()
