"""Known register histories: linearizable ones pass, non-linearizable ones fail with a reason."""

from __future__ import annotations

from replobj.testing import Outcome, RegisterModel, check_history

from .histories import op


def test_sequential_write_then_read_is_linearizable() -> None:
    history = [op(0, 0, 10, "write", 1), op(1, 20, 30, "read", output=1)]
    verdict = check_history(history, RegisterModel())
    assert verdict.ok, verdict.explain()
    assert verdict.outcome is Outcome.LINEARIZABLE
    assert verdict.operations == 2
    assert verdict.counterexamples == ()


def test_stale_read_after_a_completed_write_is_not_linearizable() -> None:
    history = [
        op(0, 0, 10, "write", 1),
        op(0, 20, 30, "write", 2),
        op(1, 40, 50, "read", output=1),
    ]
    verdict = check_history(history, RegisterModel())
    print(verdict.explain())
    assert not verdict.ok
    assert verdict.outcome is Outcome.NOT_LINEARIZABLE
    (example,) = verdict.counterexamples
    assert [o.input for o in example.prefix] == [1, 2]
    assert example.state == "value 2"
    assert [c.operation for c in example.candidates] == [history[2]]
    assert example.candidates[0].rejected
    assert example.deadline == history[2]
    assert "read() -> 1" in example.explanation
    assert "the model rejects it in this state" in example.explanation


def test_concurrent_reads_may_see_old_or_new_value_of_an_overlapping_write() -> None:
    history = [
        op(0, 0, 100, "write", 1),
        op(1, 10, 20, "read", output=None),
        op(2, 30, 40, "read", output=1),
        op(3, 50, 60, "read", output=1),
    ]
    assert check_history(history, RegisterModel()).ok


def test_reads_may_not_flip_back_to_the_old_value_during_a_write() -> None:
    history = [
        op(0, 0, 100, "write", 1),
        op(1, 10, 20, "read", output=1),
        op(2, 30, 40, "read", output=None),
    ]
    verdict = check_history(history, RegisterModel())
    assert verdict.outcome is Outcome.NOT_LINEARIZABLE
    assert "read() -> None" in verdict.explain()


def test_operations_touching_at_one_instant_count_as_concurrent() -> None:
    history = [op(0, 0, 10, "write", 1), op(1, 10, 20, "read", output=None)]
    assert check_history(history, RegisterModel()).ok


def test_compare_and_set_success_and_failure_follow_the_value() -> None:
    good = [
        op(0, 0, 10, "write", 1),
        op(1, 20, 30, "cas", (1, 2), True),
        op(2, 40, 50, "cas", (1, 3), False),
        op(0, 60, 70, "read", output=2),
    ]
    assert check_history(good, RegisterModel()).ok
    two_winners = [
        op(0, 0, 10, "write", 1),
        op(1, 20, 50, "cas", (1, 2), True),
        op(2, 20, 50, "cas", (1, 3), True),
    ]
    verdict = check_history(two_winners, RegisterModel())
    assert verdict.outcome is Outcome.NOT_LINEARIZABLE
    assert "cas(1 -> " in verdict.explain()


def test_many_overlapping_writes_and_reads_that_are_fine() -> None:
    history = [op(c, 0, 100, "write", c) for c in range(8)]
    history += [op(10 + c, 50, 150, "read", output=c) for c in range(8)]
    history.append(op(30, 200, 210, "read", output=7))
    verdict = check_history(history, RegisterModel())
    assert verdict.ok, verdict.explain()


def test_two_later_reads_disagreeing_after_all_writes_ended_fail() -> None:
    history = [op(c, 0, 100, "write", c) for c in range(8)]
    history += [op(10, 110, 120, "read", output=3), op(11, 130, 140, "read", output=5)]
    verdict = check_history(history, RegisterModel())
    assert verdict.outcome is Outcome.NOT_LINEARIZABLE
    (example,) = verdict.counterexamples
    assert example.deadline == history[-1]
    assert example.state == "value 3"


def test_initial_value_and_empty_history() -> None:
    assert check_history([], RegisterModel()).ok
    assert check_history([op(0, 0, 1, "read", output=5)], RegisterModel(initial=5)).ok
    assert not check_history([op(0, 0, 1, "read", output=5)], RegisterModel()).ok
