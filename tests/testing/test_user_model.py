"""A model written by a user for their own class: a FIFO queue."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from replobj.testing import (
    UNKNOWN,
    Model,
    ModelError,
    Operation,
    Outcome,
    PartitionedModel,
    check_history,
)

from .histories import op


class QueueModel:
    """``enqueue(x)``; ``dequeue() -> x`` or ``None`` when empty. The state is a tuple."""

    def init(self) -> tuple[Any, ...]:
        return ()

    def step(
        self, state: tuple[Any, ...], name: str, input: Any, output: Any
    ) -> tuple[bool, tuple[Any, ...]]:
        if name == "enqueue":
            return True, (*state, input)
        if not state:
            return output is None or output is UNKNOWN, state
        return output is UNKNOWN or output == state[0], state[1:]


def test_user_model_satisfies_the_protocol() -> None:
    model: Model[tuple[Any, ...]] = QueueModel()
    assert isinstance(model, Model)
    assert not isinstance(model, PartitionedModel)


def test_user_model_accepts_fifo_order_and_rejects_lifo() -> None:
    fifo = [
        op(0, 0, 10, "enqueue", "a"),
        op(0, 20, 30, "enqueue", "b"),
        op(1, 40, 50, "dequeue", output="a"),
        op(1, 60, 70, "dequeue", output="b"),
        op(1, 80, 90, "dequeue", output=None),
    ]
    verdict = check_history(fifo, QueueModel())
    assert verdict.ok, verdict.explain()
    lifo = [*fifo[:2], op(1, 40, 50, "dequeue", output="b")]
    verdict = check_history(lifo, QueueModel())
    assert verdict.outcome is Outcome.NOT_LINEARIZABLE
    text = verdict.explain()
    assert "State after it: ('a', 'b')" in text
    assert "client 1: dequeue() -> 'b'" in text


def test_concurrent_enqueues_may_land_in_either_order() -> None:
    history = [
        op(0, 0, 30, "enqueue", "a"),
        op(1, 0, 30, "enqueue", "b"),
        op(2, 40, 50, "dequeue", output="b"),
        op(2, 60, 70, "dequeue", output="a"),
    ]
    assert check_history(history, QueueModel()).ok


@dataclass(frozen=True, slots=True)
class Shelf:
    """A frozen dataclass state: hashable, so the checker can memoise it."""

    items: tuple[str, ...]


class PartitionedShelfModel:
    """A per-shelf stack of items with its own partition and rendering."""

    def init(self) -> Shelf:
        return Shelf(())

    def step(self, state: Shelf, name: str, input: Any, output: Any) -> tuple[bool, Shelf]:
        if name == "push":
            return True, Shelf((*state.items, input[1]))
        return output is UNKNOWN or list(state.items) == output, state

    def partition(self, history: Sequence[Operation]) -> list[list[Operation]]:
        shelves: dict[str, list[Operation]] = {}
        for operation in history:
            shelf = operation.input[0] if operation.name == "push" else operation.input
            shelves.setdefault(shelf, []).append(operation)
        return list(shelves.values())

    def describe(self, operation: Operation) -> str:
        return f"<{operation.name} by {operation.client}>"

    def describe_state(self, state: Any) -> str:
        return "|".join(state.items)


def test_user_partition_and_rendering_are_used() -> None:
    history = [
        op(0, 0, 10, "push", ("top", "hat")),
        op(1, 0, 10, "push", ("low", "shoe")),
        op(0, 20, 30, "look", "top", ["hat"]),
        op(1, 20, 30, "look", "low", []),
    ]
    verdict = check_history(history, PartitionedShelfModel())
    assert verdict.partitions == 2
    (example,) = verdict.counterexamples
    assert example.state == "shoe"
    assert "<look by 1>" in example.explanation


class ListStateModel:
    """A broken model whose state is a list."""

    def init(self) -> list[int]:
        return []

    def step(self, state: list[int], name: str, input: Any, output: Any) -> tuple[bool, list[int]]:
        return True, [*state, input]


def test_unhashable_state_is_reported_clearly() -> None:
    with pytest.raises(ModelError, match="unhashable state"):
        check_history([op(0, 0, 10, "append", 1)], ListStateModel())
