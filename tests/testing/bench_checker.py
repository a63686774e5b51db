"""Times the checker on generated histories (the table in docs/linearizability.md).

Run by hand, not by pytest: ``cd tests && ../.venv/bin/python -m testing.bench_checker``.
"""

from __future__ import annotations

import random
import time
from typing import Any

from replobj.testing import (
    UNKNOWN,
    CounterModel,
    KeyValueModel,
    Model,
    Operation,
    SetModel,
    check_history,
)

from .histories import generate_kv_history

BUDGET = 30.0


def generate_history(
    seed: int, operations: int, kind: str, read_rate: float, unknown_rate: float = 0.0
) -> list[Operation]:
    """A correct counter or set history from 10 clients, outputs from linearization points."""
    rng = random.Random(seed)
    free_at = [0] * 10
    planned: list[tuple[int, int, int, int, int | None, str]] = []
    for index in range(operations):
        client = min(range(10), key=lambda c: (free_at[c], c))
        call = free_at[client] + rng.randint(0, 5)
        duration = rng.randint(1, 60)
        free_at[client] = call + duration
        name = "read" if rng.random() < read_rate else ("incr" if kind == "counter" else "add")
        if rng.random() >= unknown_rate:
            planned.append(
                (call + rng.randint(0, duration), index, client, call, call + duration, name)
            )
        else:
            effect = call + rng.randint(0, 5 * duration) if rng.random() < 0.5 else -1
            planned.append((effect, index, client, call, None, name))
    count = 0
    elements: set[int] = set()
    history: dict[int, Operation] = {}
    for effect, index, client, call, returned, name in sorted(planned):
        output: Any = None
        if effect >= 0:
            if name == "incr":
                count += 1
                output = count
            elif name == "add":
                elements.add(index)
            else:
                output = count if kind == "counter" else sorted(elements)
        argument = index if name == "add" else None
        history[index] = Operation(
            client, call, returned, name, argument, UNKNOWN if returned is None else output
        )
    return [history[index] for index in sorted(history)]


def measure(label: str, history: list[Operation], model: Model[Any]) -> None:
    """Check one history and print the verdict and time."""
    started = time.monotonic()
    verdict = check_history(history, model, budget=BUDGET)
    print(f"{label:<58} {verdict.outcome.value:<16} {time.monotonic() - started:6.2f} s")


def main() -> None:
    """Print one line per history of the docs table."""
    for keys, unknown in ((20, 0.01), (1, 0.0), (1, 0.01), (1, 0.05)):
        history = generate_kv_history(3, operations=10_000, keys=keys, unknown_rate=unknown)
        measure(f"kv 10,000 calls, {keys} keys, {unknown:.0%} unknown", history, KeyValueModel())
    measure("counter 10,000 calls", generate_history(1, 10_000, "counter", 0.5), CounterModel())
    for operations, reads, unknown in (
        (2000, 0.5, 0.0),
        (2000, 0.05, 0.0),
        (5000, 0.05, 0.0),
        (2000, 0.2, 0.05),
    ):
        history = generate_history(1, operations, "set", reads, unknown)
        label = f"set {operations:,} calls, {reads:.0%} reads, {unknown:.0%} unknown"
        measure(label, history, SetModel())


if __name__ == "__main__":
    main()
