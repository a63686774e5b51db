"""The Dict and Queue models on known good and bad histories."""

from __future__ import annotations

from typing import Any

import pytest

from replobj.testing import (
    EMPTY,
    UNKNOWN,
    DictModel,
    HistoryError,
    Operation,
    Outcome,
    QueueModel,
    check_history,
)


def op(
    client: int, call: int, ret: int | None, name: str, inp: Any = None, out: Any = None
) -> Operation:
    return Operation(client, call, ret, name, inp, UNKNOWN if ret is None else out)


def test_dict_concurrent_writes_and_a_pop_in_some_order() -> None:
    history = [
        op(0, 0, 50, "set", ("k", 1)),
        op(1, 10, 40, "set", ("k", 2)),
        op(2, 60, 70, "pop", "k", 1),
        op(2, 80, 90, "contains", "k", False),
        op(0, 80, 95, "setdefault", ("k", 3), 3),
        op(1, 100, 110, "get", "k", 3),
        op(1, 120, 130, "delete", "k", True),
        op(1, 140, 150, "pop", "k", EMPTY),
    ]
    verdict = check_history(history, DictModel())
    assert verdict.ok, verdict.explain()


def test_dict_value_popped_twice_is_not_linearizable() -> None:
    history = [
        op(0, 0, 10, "set", ("k", 1)),
        op(1, 20, 30, "pop", "k", 1),
        op(2, 25, 35, "pop", "k", 1),
    ]
    assert check_history(history, DictModel()).outcome is Outcome.NOT_LINEARIZABLE


def test_dict_setdefault_of_a_present_key_keeps_the_value() -> None:
    history = [op(0, 0, 10, "set", ("k", 1)), op(0, 20, 30, "setdefault", ("k", 2), 2)]
    assert check_history(history, DictModel()).outcome is Outcome.NOT_LINEARIZABLE


def test_dict_keys_are_checked_apart() -> None:
    history = [
        op(0, 0, 10, "set", ("a", 1)),
        op(0, 20, 30, "get", "b", None),
        op(1, 40, 50, "get", "a", 1),
        op(1, 60, None, "set", ("b", 2)),
    ]
    assert check_history(history, DictModel()).ok
    assert len(DictModel().partition(history)) == 2


def test_queue_items_leave_in_the_order_they_were_put() -> None:
    history = [
        op(0, 0, 10, "put", "a", 1),
        op(1, 5, 15, "put", "b", 2),
        op(2, 20, 30, "peek", None, "a"),
        op(2, 40, 50, "pop", None, "a"),
        op(0, 40, None, "put", "c"),
        op(1, 60, 70, "len", None, 2),
        op(1, 80, 90, "pop", None, "b"),
        op(2, 100, 110, "pop", None, "c"),
        op(2, 120, 130, "pop", None, EMPTY),
    ]
    verdict = check_history(history, QueueModel())
    assert verdict.ok, verdict.explain()


def test_queue_out_of_order_pop_is_not_linearizable() -> None:
    history = [
        op(0, 0, 10, "put", "a", 1),
        op(0, 20, 30, "put", "b", 2),
        op(1, 40, 50, "pop", None, "b"),
    ]
    verdict = check_history(history, QueueModel())
    assert verdict.outcome is Outcome.NOT_LINEARIZABLE
    assert "queue ['a', 'b']" in verdict.explain()


def test_queue_item_delivered_twice_is_not_linearizable() -> None:
    history = [
        op(0, 0, 10, "put", "a"),
        op(1, 20, 30, "pop", None, "a"),
        op(2, 20, 30, "pop", None, "a"),
    ]
    assert check_history(history, QueueModel()).outcome is Outcome.NOT_LINEARIZABLE


def test_queue_empty_pop_after_a_completed_put_is_not_linearizable() -> None:
    history = [op(0, 0, 10, "put", "a"), op(1, 20, 30, "pop", None, EMPTY)]
    assert check_history(history, QueueModel()).outcome is Outcome.NOT_LINEARIZABLE


def test_unknown_operations_are_named_in_the_error() -> None:
    with pytest.raises(HistoryError, match="QueueModel has no operation 'shift'"):
        check_history([op(0, 0, 10, "shift")], QueueModel())
    with pytest.raises(HistoryError, match="DictModel has no operation 'put'"):
        check_history([op(0, 0, 10, "put", ("k", 1))], DictModel())
