"""Helpers that build histories: terse literals, seeded generators and a brute-force oracle."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Any

from replobj.testing import UNKNOWN, Model, Operation


def op(
    client: int,
    call: int,
    returned: int | None,
    name: str,
    input: Any = None,
    output: Any = None,
) -> Operation:
    """One operation; ``returned=None`` makes its outcome unknown."""
    return Operation(client, call, returned, name, input, UNKNOWN if returned is None else output)


def generate_kv_history(
    seed: int,
    operations: int = 10_000,
    clients: int = 10,
    keys: int = 20,
    unknown_rate: float = 0.01,
) -> list[Operation]:
    """A history of a correct (atomic) map under concurrent clients.

    Each client issues one call at a time with random latency; each call takes effect at a
    random instant inside its interval, and outputs come from applying the calls in the order
    of those instants. A call with unknown outcome (the client gave up at the end of its
    interval) takes effect half the time, possibly long after the client gave up.
    """
    rng = random.Random(seed)
    free_at = [0] * clients
    planned: list[tuple[int, int, int, int, int | None, str, Any]] = []
    next_value = 0
    for index in range(operations):
        client = min(range(clients), key=lambda c: (free_at[c], c))
        call = free_at[client] + rng.randint(0, 5)
        duration = rng.randint(1, 60)
        key = f"k{rng.randrange(keys)}"
        roll = rng.random()
        argument: Any
        if roll < 0.5:
            name, argument = "get", key
        elif roll < 0.9:
            next_value += 1
            name, argument = "put", (key, next_value)
        else:
            name, argument = "delete", key
        free_at[client] = call + duration
        if rng.random() >= unknown_rate:
            planned.append(
                (
                    call + rng.randint(0, duration),
                    index,
                    client,
                    call,
                    call + duration,
                    name,
                    argument,
                )
            )
        elif rng.random() < 0.5:
            planned.append(
                (call + rng.randint(0, 5 * duration), index, client, call, None, name, argument)
            )
        else:
            planned.append((-1, index, client, call, None, name, argument))
    store: dict[str, int] = {}
    history: dict[int, Operation] = {}
    for effect_at, index, client, call, returned, name, argument in sorted(planned):
        output: Any = None
        if effect_at >= 0:
            if name == "get":
                output = store.get(argument)
            elif name == "put":
                store[argument[0]] = argument[1]
            else:
                store.pop(argument, None)
        history[index] = Operation(
            client, call, returned, name, argument, UNKNOWN if returned is None else output
        )
    return [history[index] for index in sorted(history)]


def brute_force_linearizable(history: Sequence[Operation], model: Model[Any]) -> bool:
    """Try every order of every admissible subset: the oracle for small histories."""
    known = [op for op in history if op.outcome_known]
    unknown = [op for op in history if not op.outcome_known]
    for count in range(len(unknown) + 1):
        for chosen in itertools.combinations(unknown, count):
            for order in itertools.permutations([*known, *chosen]):
                if _respects_real_time(order) and _accepted(order, model):
                    return True
    return False


def _respects_real_time(order: Sequence[Operation]) -> bool:
    for position, later in enumerate(order):
        for earlier in order[position + 1 :]:
            if earlier.return_time is not None and earlier.return_time < later.call_time:
                return False
    return True


def _accepted(order: Sequence[Operation], model: Model[Any]) -> bool:
    state = model.init()
    for operation in order:
        accepted, state = model.step(state, operation.name, operation.input, operation.output)
        if not accepted:
            return False
    return True
