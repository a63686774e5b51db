"""The counter, set and key-value models on known good and bad histories."""

from __future__ import annotations

import pytest

from replobj.testing import (
    CounterModel,
    HistoryError,
    KeyValueModel,
    Outcome,
    RegisterModel,
    SetModel,
    check_history,
)

from .histories import op


def test_counter_concurrent_increments_in_either_order() -> None:
    history = [
        op(0, 0, 50, "incr", output=2),
        op(1, 10, 40, "incr", output=1),
        op(2, 60, 70, "read", output=2),
        op(0, 80, 90, "incr", 5, 7),
    ]
    verdict = check_history(history, CounterModel())
    assert verdict.ok, verdict.explain()


def test_counter_read_going_backwards_is_not_linearizable() -> None:
    history = [
        op(0, 0, 10, "incr", output=1),
        op(0, 20, 30, "incr", output=2),
        op(1, 40, 50, "read", output=2),
        op(2, 60, 70, "read", output=1),
    ]
    verdict = check_history(history, CounterModel())
    assert verdict.outcome is Outcome.NOT_LINEARIZABLE
    (example,) = verdict.counterexamples
    assert example.deadline == history[3]
    assert example.state == "value 2"


def test_counter_duplicate_increment_result_is_not_linearizable() -> None:
    history = [op(0, 0, 50, "incr", output=1), op(1, 0, 50, "incr", output=1)]
    assert check_history(history, CounterModel()).outcome is Outcome.NOT_LINEARIZABLE


def test_set_reads_see_every_completed_add() -> None:
    history = [
        op(0, 0, 10, "add", "a"),
        op(1, 5, 30, "add", "b"),
        op(2, 12, 20, "read", output=["a"]),
        op(2, 40, 50, "read", output=("b", "a")),
    ]
    assert check_history(history, SetModel()).ok


def test_set_lost_write_is_not_linearizable() -> None:
    history = [
        op(0, 0, 10, "add", 1),
        op(1, 20, 30, "add", 2),
        op(2, 40, 50, "read", output=[1]),
    ]
    verdict = check_history(history, SetModel())
    assert verdict.outcome is Outcome.NOT_LINEARIZABLE
    text = verdict.explain()
    print(text)
    assert "read() -> {1}" in text
    assert "set {1, 2}" in text


def test_kv_partitions_by_key_and_finds_the_bad_key() -> None:
    history = [
        op(0, 0, 10, "put", ("x", 1)),
        op(1, 0, 10, "put", ("y", 1)),
        op(0, 20, 30, "put", ("x", 2)),
        op(1, 20, 30, "delete", "y"),
        op(2, 40, 50, "get", "x", 2),
        op(2, 60, 70, "get", "y", 1),
        op(3, 40, 80, "get", "z", None),
    ]
    verdict = check_history(history, KeyValueModel())
    assert verdict.partitions == 3
    assert verdict.outcome is Outcome.NOT_LINEARIZABLE
    (example,) = verdict.counterexamples
    assert example.partition == 1
    assert example.deadline == history[5]
    assert example.state == "{}"
    assert "get('y') -> 1" in example.explanation
    whole = check_history(history, KeyValueModel(), partition=False)
    assert whole.partitions == 1
    assert whole.outcome is Outcome.NOT_LINEARIZABLE


def test_kv_good_history_with_deletes() -> None:
    history = [
        op(0, 0, 10, "put", ("x", 1)),
        op(1, 5, 40, "delete", "x"),
        op(2, 12, 20, "get", "x", 1),
        op(2, 45, 50, "get", "x", None),
        op(0, 60, 70, "put", ("x", 3)),
        op(1, 65, 90, "get", "x", 3),
    ]
    verdict = check_history(history, KeyValueModel())
    assert verdict.ok, verdict.explain()


def test_unknown_operation_name_is_reported() -> None:
    for model in (RegisterModel(), CounterModel(), SetModel(), KeyValueModel()):
        with pytest.raises(HistoryError, match="has no operation 'frobnicate'"):
            check_history([op(0, 0, 1, "frobnicate", "k")], model)
