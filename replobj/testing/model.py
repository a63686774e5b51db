"""What a model is: the sequential specification a history is checked against.

A model describes the object as if calls ran one at a time: from a state and one call (its
name, input and output) it says whether that output is possible and what the next state is.
The checker searches for an order of the calls, consistent with real time, that the model
accepts from :meth:`Model.init` onwards.

States must be hashable and immutable (ints, strings, tuples, frozensets, frozen dataclasses):
the checker remembers which (set of linearized calls, state) pairs it already explored, and a
state that changes after it was returned would corrupt that memory.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from .history import Operation

__all__ = [
    "DescribedModel",
    "Model",
    "PartitionedModel",
    "ReadAwareModel",
    "State",
    "WitnessedModel",
]

State = TypeVar("State")
"""A model's state type (hashable, immutable)."""


@runtime_checkable
class Model(Protocol[State]):
    """The sequential specification of an object (see the module docstring).

    When a call's outcome is unknown its output is :data:`~replobj.testing.UNKNOWN`; ``step``
    must then accept the call and return the state it leaves if it took effect. The checker
    itself covers the case where it never took effect, so ``step`` need not.
    """

    def init(self) -> State:
        """The state before any call."""
        ...

    def step(self, state: State, name: str, input: Any, output: Any) -> tuple[bool, State]:
        """Apply one call to ``state``.

        :param state: the state before the call (never modified).
        :param name: the call's :attr:`~replobj.testing.Operation.name`.
        :param input: the call's :attr:`~replobj.testing.Operation.input`.
        :param output: what the call returned, or :data:`~replobj.testing.UNKNOWN`.
        :returns: whether the call could have returned ``output`` in ``state``, and the state
            after it (ignored when the first item is false).
        """
        ...


@runtime_checkable
class PartitionedModel(Protocol):
    """A model whose calls split into independent groups (for example one group per key).

    Linearizability is compositional: a history is linearizable exactly when each group's
    sub-history is, so the checker searches each group alone, which is far cheaper.
    """

    def partition(self, history: Sequence[Operation]) -> list[list[Operation]]:
        """Split ``history`` into sub-histories whose calls never affect each other's outputs."""
        ...


@runtime_checkable
class DescribedModel(Protocol):
    """A model that renders its calls and states for failure explanations."""

    def describe(self, operation: Operation) -> str:
        """Render one call (default: :meth:`~replobj.testing.Operation.describe`)."""
        ...

    def describe_state(self, state: Any) -> str:
        """Render one state (default: ``repr``)."""
        ...


@runtime_checkable
class ReadAwareModel(Protocol):
    """A model that says which calls never change the state, which speeds the search up.

    The checker linearizes such a call as soon as the model accepts it, without ever trying
    the alternatives: any solution can be rearranged to do the same. This holds only if the
    call leaves the state unchanged in *every* state where the model accepts it; when in doubt,
    return ``False`` (the search stays correct, only slower).
    """

    def is_read_only(self, name: str, input: Any, output: Any) -> bool:
        """Whether the call ``name(input) -> output`` never changes the state."""
        ...


@runtime_checkable
class WitnessedModel(Protocol):
    """A model whose writes leave a token that later reads show, which settles unknown writes.

    For a token written by exactly one call of the history, a write of unknown outcome is
    settled before the search (:func:`~replobj.testing.witness.settle_unknown_writes`): if
    no completed call shows its token, leaving it out keeps the verdict; otherwise it took
    effect before the first such call returned, and becomes a completed call ending there.
    Both make the search much cheaper. Implement it only if every call that writes a token
    ignores its own output, and no state before any write shows a token.
    """

    def written_token(self, operation: Operation) -> Hashable | None:
        """The token ``operation`` writes (``None`` for a call that writes none)."""
        ...

    def shown_tokens(self, operation: Operation) -> Iterable[Hashable]:
        """The tokens a completed ``operation``'s output shows (what it read)."""
        ...
