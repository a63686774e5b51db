"""Settling unknown writes from what reads show: same verdicts, much faster searches."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from replobj.testing import UNKNOWN, KeyValueModel, Operation, SetModel, check_history
from replobj.testing.witness import settle_unknown_writes

from .histories import brute_force_linearizable, op


def _random_unique_history(rng: random.Random, kind: str) -> list[Operation]:
    """Up to three clients, up to three calls each, every written value unique; a quarter of
    the calls end with an unknown outcome; reads return values that may or may not fit."""
    history: list[Operation] = []
    written: list[int] = []
    for client in range(rng.randint(1, 3)):
        now = rng.randint(0, 6)
        for _ in range(rng.randint(1, 3)):
            returned: int | None = now + rng.randint(0, 6)
            if rng.random() < 0.25:
                returned = None
            name, argument, output = _call(rng, kind, written)
            history.append(
                Operation(
                    client, now, returned, name, argument, UNKNOWN if returned is None else output
                )
            )
            if returned is None:
                break
            now = returned + rng.randint(1, 4)
    return history


def _call(rng: random.Random, kind: str, written: list[int]) -> tuple[str, Any, Any]:
    if rng.random() < 0.55:
        written.append(len(written) + 1)
        if kind == "kv":
            return "put", ("k", written[-1]), None
        return "add", written[-1], None
    candidates = [*written, len(written) + 1]
    if kind == "kv":
        return "get", "k", rng.choice([None, *candidates])
    return "read", None, rng.sample(candidates, rng.randint(0, len(candidates)))


@pytest.mark.parametrize(("kind", "model"), [("kv", KeyValueModel), ("set", SetModel)])
def test_settling_keeps_the_verdict_of_a_brute_force_search(kind: str, model: type) -> None:
    verdicts = {True: 0, False: 0}
    settled_some = 0
    for seed in range(400):
        history = _random_unique_history(random.Random(seed), kind)
        expected = brute_force_linearizable(history, model())
        verdict = check_history(history, model())
        unsettled = check_history(history, model(), settle_unknown=False)
        assert verdict.ok is expected, f"{kind} seed {seed}: {history}\n{verdict.explain()}"
        assert unsettled.ok is expected, f"{kind} seed {seed}"
        verdicts[expected] += 1
        settled_some += settle_unknown_writes(history, model()) != history
    print(f"{kind}: linearizable / not: {verdicts}; histories changed by settling: {settled_some}")
    assert min(verdicts.values()) > 40
    assert settled_some > 40


def test_an_unread_unknown_add_is_left_out_and_a_read_one_ends_at_its_first_reader() -> None:
    history = [
        op(0, 0, None, "add", 1),
        op(1, 0, None, "add", 2),
        op(2, 5, 9, "read", output=[2]),
        op(3, 7, 12, "read", output=[2]),
    ]
    settled = settle_unknown_writes(history, SetModel())
    assert [(o.input, o.return_time) for o in settled if o.name == "add"] == [(2, 9)]
    assert all(o.outcome_known for o in settled)


def test_a_value_written_twice_is_left_alone() -> None:
    history = [
        op(0, 0, None, "put", ("k", 1)),
        op(1, 0, 3, "put", ("k", 1)),
        op(2, 5, 9, "get", "k", 1),
    ]
    assert settle_unknown_writes(history, KeyValueModel()) == history


def _correct_set_history(seed: int, calls: int, unknown_rate: float) -> list[Operation]:
    """A history of an atomic set under 10 clients; a call of unknown outcome takes effect
    half the time, possibly long after its client gave up."""
    rng = random.Random(seed)
    free_at = [0] * 10
    planned: list[tuple[int, int, int, int, int | None, str, Any]] = []
    for index in range(calls):
        client = min(range(10), key=lambda c: (free_at[c], c))
        start = free_at[client] + rng.randint(0, 5)
        duration = rng.randint(1, 60)
        free_at[client] = start + duration
        name, element = ("read", None) if rng.random() < 0.2 else ("add", index)
        if name == "add" and rng.random() < unknown_rate:
            effect = start + rng.randint(0, 5 * duration) if rng.random() < 0.5 else -1
            planned.append((effect, index, client, start, None, name, element))
        else:
            effect = start + rng.randint(0, duration)
            planned.append((effect, index, client, start, start + duration, name, element))
    present: set[int] = set()
    history: dict[int, Operation] = {}
    for effect, index, client, start, returned, name, element in sorted(planned):
        output: Any = None
        if effect >= 0 and name == "add":
            present.add(element)
        elif effect >= 0:
            output = sorted(present)
        history[index] = Operation(
            client, start, returned, name, element, UNKNOWN if returned is None else output
        )
    return [history[index] for index in sorted(history)]


def test_set_histories_with_many_unknown_adds_are_decided() -> None:
    """Without settling, 500 such calls ran out of a 30 s budget (docs/linearizability.md)."""
    history = _correct_set_history(seed=3, calls=2_000, unknown_rate=0.05)
    unknown = sum(not o.outcome_known for o in history)
    started = time.perf_counter()
    verdict = check_history(history, SetModel(), budget=120.0)
    elapsed = time.perf_counter() - started
    print(f"2,000 set calls, {unknown} unknown adds: {verdict.outcome.value} in {elapsed:.2f} s")
    assert unknown > 50
    assert verdict.ok, verdict.explain()
    lost = list(history)
    victim = next(i for i, o in enumerate(lost) if o.name == "read" and len(o.output) > 10)
    lost[victim] = Operation(
        lost[victim].client,
        lost[victim].call_time,
        lost[victim].return_time,
        "read",
        None,
        lost[victim].output[1:],
    )
    assert not check_history(lost, SetModel(), budget=120.0).ok
