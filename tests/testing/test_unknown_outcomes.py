"""Calls whose outcome is unknown may take effect at any point after their call, or never."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from replobj.testing import (
    UNKNOWN,
    CounterModel,
    KeyValueModel,
    Model,
    Operation,
    Outcome,
    RegisterModel,
    SetModel,
    check_history,
)

from .histories import brute_force_linearizable, generate_kv_history, op


def test_unknown_write_may_never_happen() -> None:
    history = [
        op(0, 0, None, "write", 1),
        op(1, 10, 20, "read", output=None),
        op(1, 30, 40, "read", output=None),
    ]
    verdict = check_history(history, RegisterModel())
    assert verdict.ok, verdict.explain()
    assert verdict.unknown_outcome == 1


def test_unknown_write_may_apply_long_after_the_client_gave_up() -> None:
    history = [
        op(0, 0, None, "write", 1),
        op(1, 100, 110, "read", output=None),
        op(1, 500, 510, "read", output=1),
    ]
    assert check_history(history, RegisterModel()).ok


def test_unknown_write_applies_at_most_once() -> None:
    history = [
        op(0, 0, None, "write", 1),
        op(1, 10, 20, "read", output=1),
        op(0, 30, 40, "write", 2),
        op(1, 50, 60, "read", output=1),
    ]
    verdict = check_history(history, RegisterModel())
    assert verdict.outcome is Outcome.NOT_LINEARIZABLE
    (example,) = verdict.counterexamples
    assert example.deadline == history[3]


def test_unknown_write_cannot_apply_before_it_was_invoked() -> None:
    history = [
        op(1, 0, 10, "read", output=1),
        op(0, 20, None, "write", 1),
    ]
    assert check_history(history, RegisterModel()).outcome is Outcome.NOT_LINEARIZABLE


def test_unknown_increments_may_explain_a_jump() -> None:
    history = [
        op(0, 0, None, "incr"),
        op(1, 5, None, "incr"),
        op(2, 10, 20, "incr", output=2),
        op(2, 30, 40, "read", output=3),
    ]
    assert check_history(history, CounterModel()).ok
    history.append(op(2, 50, 60, "read", output=4))
    assert not check_history(history, CounterModel()).ok


def test_unknown_set_add_is_either_seen_from_some_point_on_or_never() -> None:
    late = [
        op(0, 0, None, "add", "x"),
        op(1, 10, 20, "read", output=[]),
        op(1, 30, 40, "read", output=["x"]),
        op(1, 50, 60, "read", output=["x"]),
    ]
    assert check_history(late, SetModel()).ok
    flapping = [*late, op(1, 70, 80, "read", output=[])]
    assert check_history(flapping, SetModel()).outcome is Outcome.NOT_LINEARIZABLE


def test_unknown_read_constrains_nothing() -> None:
    history = [op(0, 0, 10, "write", 1), op(1, 20, None, "read"), op(1, 30, 40, "read", output=1)]
    assert check_history(history, RegisterModel()).ok


def _random_history(rng: random.Random, kind: str) -> list[Operation]:
    """Up to three clients, up to three calls each; a fifth of them end with unknown outcome."""
    history: list[Operation] = []
    for client in range(rng.randint(1, 3)):
        time = rng.randint(0, 6)
        for _ in range(rng.randint(1, 3)):
            returned: int | None = time + rng.randint(0, 6)
            if rng.random() < 0.2:
                returned = None
            name, argument, output = _random_call(rng, kind)
            history.append(
                Operation(
                    client, time, returned, name, argument, UNKNOWN if returned is None else output
                )
            )
            if returned is None:
                break
            time = returned + rng.randint(1, 4)
    return history


def _random_call(rng: random.Random, kind: str) -> tuple[str, Any, Any]:
    roll = rng.random()
    if kind == "register":
        if roll < 0.4:
            return "write", rng.randint(1, 2), None
        if roll < 0.8:
            return "read", None, rng.choice([None, 1, 2])
        return "cas", (rng.choice([None, 1, 2]), rng.randint(1, 2)), rng.random() < 0.5
    if kind == "counter":
        if roll < 0.5:
            return "incr", rng.choice([None, 2]), rng.randint(0, 4)
        return "read", None, rng.randint(0, 4)
    if roll < 0.5:
        return "add", rng.randint(1, 2), None
    return "read", None, rng.choice([[], [1], [2], [2, 1]])


@pytest.mark.parametrize(
    ("kind", "model"),
    [("register", RegisterModel()), ("counter", CounterModel()), ("set", SetModel())],
)
def test_checker_agrees_with_brute_force_on_random_small_histories(
    kind: str, model: Model[Any]
) -> None:
    verdicts = {True: 0, False: 0}
    for seed in range(300):
        history = _random_history(random.Random(seed), kind)
        expected = brute_force_linearizable(history, model)
        verdict = check_history(history, model)
        assert verdict.ok is expected, f"{kind} seed {seed}: {history}\n{verdict.explain()}"
        verdicts[expected] += 1
    print(f"{kind}: linearizable / not: {verdicts}")
    assert min(verdicts.values()) > 30


def test_partitioned_and_whole_kv_checks_agree() -> None:
    outcomes = set()
    for seed in range(150):
        rng = random.Random(seed)
        history = generate_kv_history(seed, operations=40, clients=4, keys=3, unknown_rate=0.1)
        position = rng.randrange(len(history))
        if history[position].name == "get" and history[position].outcome_known:
            history[position] = dataclasses.replace(history[position], output=rng.choice([None, 1]))
        by_key = check_history(history, KeyValueModel())
        whole = check_history(history, KeyValueModel(), partition=False)
        assert by_key.outcome is whole.outcome, f"seed {seed}"
        assert by_key.partitions == len({KeyValueModel().key_of(o) for o in history})
        outcomes.add(by_key.outcome)
    assert outcomes == {Outcome.LINEARIZABLE, Outcome.NOT_LINEARIZABLE}
