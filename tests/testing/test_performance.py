"""Search-time bounds: 10,000-operation histories, and the budget that stops a hopeless search."""

from __future__ import annotations

import dataclasses

from replobj.testing import (
    UNKNOWN,
    KeyValueModel,
    Operation,
    Outcome,
    RegisterModel,
    check_history,
)

from .histories import generate_kv_history, op

HANG_GUARD_SECONDS = 30.0
"""Not a performance target: only proof that the search does not run away."""


def test_ten_thousand_operation_kv_history_from_ten_clients() -> None:
    seed = 20_261_125
    history = generate_kv_history(seed, operations=10_000, clients=10, keys=20)
    verdict = check_history(history, KeyValueModel(), budget=HANG_GUARD_SECONDS)
    print(f"seed {seed}: {verdict.explain()}")
    assert verdict.ok, verdict.explain()
    assert verdict.operations == 10_000
    assert verdict.unknown_outcome > 50
    assert verdict.partitions == 20
    assert verdict.elapsed < HANG_GUARD_SECONDS


def test_ten_thousand_operations_on_a_single_key_without_partitioning() -> None:
    seed = 5
    history = generate_kv_history(seed, operations=10_000, clients=10, keys=1)
    verdict = check_history(history, KeyValueModel(), budget=HANG_GUARD_SECONDS)
    print(f"seed {seed}: {verdict.explain()}")
    assert verdict.ok, verdict.explain()
    assert verdict.partitions == 1


def test_one_corrupted_read_in_ten_thousand_operations_is_found() -> None:
    seed = 99
    history = generate_kv_history(seed, operations=10_000, clients=10, keys=20)
    position, victim = next(
        (i, o)
        for i, o in enumerate(history)
        if i > 5_000 and o.name == "get" and o.outcome_known and o.output is not None
    )
    history[position] = dataclasses.replace(victim, output=-1)
    verdict = check_history(history, KeyValueModel(), budget=HANG_GUARD_SECONDS)
    print(f"seed {seed}, corrupted operation {position}: {verdict.explain()}")
    assert verdict.outcome is Outcome.NOT_LINEARIZABLE
    (example,) = verdict.counterexamples
    assert history[position] in [c.operation for c in example.candidates]


def test_an_exhausted_budget_gives_an_unknown_verdict() -> None:
    writers = [op(c, 0, None, "write", c) for c in range(24)]
    reads = [op(100 + c, 10, 20, "read", output=1000 + c) for c in range(2)]
    ticks = iter(range(10**9))
    verdict = check_history(
        [*writers, *reads], RegisterModel(), budget=5.0, clock=lambda: float(next(ticks))
    )
    assert verdict.outcome is Outcome.UNKNOWN
    assert not verdict.ok
    assert verdict.undecided == 1
    assert "undecided" in verdict.explain()
    assert all(o.output is UNKNOWN for o in writers)


def _hard_key() -> list[Operation]:
    """24 unknown puts of two values, each written twice or more, so no read settles them
    (see replobj.testing.witness), and two gets of values nobody wrote: the search must try
    every subset of the puts before it can say no."""
    hard = [op(c, 0, None, "put", ("h", c % 2)) for c in range(24)]
    return hard + [op(100 + c, 10, 20, "get", "h", 1000 + c) for c in range(2)]


def test_a_violation_is_reported_even_when_another_key_runs_out_of_budget() -> None:
    hard = _hard_key()
    stale = [op(0, 0, 10, "put", ("x", 1)), op(1, 20, 30, "get", "x", None)]
    ticks = iter(range(10**9))
    verdict = check_history(
        [*hard, *stale], KeyValueModel(), budget=5.0, clock=lambda: float(next(ticks))
    )
    assert verdict.outcome is Outcome.NOT_LINEARIZABLE
    assert verdict.undecided == 1
    (example,) = verdict.counterexamples
    assert example.deadline == stale[1]


def test_a_memory_bound_leaves_only_the_hard_key_undecided() -> None:
    hard = _hard_key()
    fine = [op(0, 0, 10, "put", ("x", 1)), op(1, 20, 30, "get", "x", 1)]
    verdict = check_history([*hard, *fine], KeyValueModel(), budget=None, memory_budget=200_000)
    assert verdict.outcome is Outcome.UNKNOWN
    assert verdict.partitions == 2
    assert verdict.undecided == 1
    assert "memory budget" in verdict.explain()
