"""Concurrent clients on every member of a real 3-node cluster, with a leadership transfer
half-way: the recorded Dict and Queue histories are linearizable (and a tampered copy is
not, so the check can fail)."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import anyio
import pytest

from replobj import errors
from replobj.batteries import Dict, Queue
from replobj.testing import (
    EMPTY,
    DictModel,
    HistoryRecorder,
    Operation,
    Outcome,
    QueueModel,
    check_history,
)

from .helpers import BatteryCluster

pytestmark = pytest.mark.anyio

SEED = 14
CLIENTS = 6
STEPS = 16


async def record(
    recorder: HistoryRecorder, client: int, name: str, argument: Any, call: Awaitable[Any]
) -> None:
    """Invoke ``call`` and settle its record by what the outcome proves."""
    token = recorder.invoke(client, name, argument)
    try:
        output = await call
    except (errors.QueueEmptyError, KeyError):
        recorder.ok(token, EMPTY)  # applied, as a no-op
    except errors.CallTimeoutError:
        recorder.unknown(token)
    except errors.RaftRefusedError:
        recorder.fail(token)
    else:
        recorder.ok(token, output)


async def dict_step(recorder: HistoryRecorder, client: int, step: int, d: Any, rng: Any) -> None:
    """One random Dict call on one of three keys; written values are unique."""
    key, value, roll = f"k{rng.randrange(3)}", client * 1000 + step, rng.random()
    if roll < 0.35:
        await record(recorder, client, "get", key, d.get(key))
    elif roll < 0.65:
        await record(recorder, client, "set", (key, value), d.set(key, value))
    elif roll < 0.75:
        await record(recorder, client, "setdefault", (key, value), d.setdefault(key, value))
    elif roll < 0.85:
        await record(recorder, client, "pop", key, d.pop(key))
    elif roll < 0.93:
        await record(recorder, client, "delete", key, d.delete(key))
    else:
        await record(recorder, client, "contains", key, d.contains(key))


async def queue_step(recorder: HistoryRecorder, client: int, step: int, q: Any, rng: Any) -> None:
    """One random Queue call; queued items are unique."""
    item, roll = f"c{client}-{step}", rng.random()
    if roll < 0.45:
        await record(recorder, client, "put", item, q.put(item))
    elif roll < 0.8:
        await record(recorder, client, "pop", None, q.pop())
    elif roll < 0.9:
        await record(recorder, client, "peek", None, q.peek())
    else:
        await record(recorder, client, "len", None, q.len())


def tampered(history: list[Operation]) -> list[Operation]:
    """``history`` with the last item popped from the queue handed out a second time."""
    pops = [op for op in history if op.name == "pop" and op.output not in (EMPTY, None)]
    last = max(pops, key=lambda op: op.call_time)
    late = max(op.return_time or op.call_time for op in history) + 1
    return [*history, dataclasses.replace(last, client="tamper", call_time=late, return_time=late)]


async def test_dict_and_queue_histories_are_linearizable(tmp_path: Path) -> None:
    print(f"seed {SEED}")
    rng = random.Random(SEED)
    dicts, queues = HistoryRecorder(), HistoryRecorder()
    halfway = anyio.Event()
    done = 0
    async with anyio.create_task_group() as tasks:
        cluster = BatteryCluster(tasks, tmp_path, {"dict": Dict, "queue": Queue})
        leader = await cluster.start_all()
        members = sorted(cluster.nodes)

        async def client(client_id: int) -> None:
            nonlocal done
            objects = cluster.objects[members[client_id % 3]]
            for step in range(STEPS):
                await dict_step(dicts, client_id, step, objects["dict"], rng)
                await queue_step(queues, client_id, step, objects["queue"], rng)
                done += 1
                if done == CLIENTS * STEPS // 2:
                    halfway.set()

        async def move_leadership() -> None:
            await halfway.wait()
            await cluster.nodes[leader].transfer_leadership()

        async with anyio.create_task_group() as clients:
            clients.start_soon(move_leadership)
            for client_id in range(CLIENTS):
                clients.start_soon(client, client_id)
        assert await cluster.leader() != leader
        await cluster.close()

    for recorder, model in ((dicts, DictModel()), (queues, QueueModel())):
        history = recorder.history()
        verdict = check_history(history, model)
        print(type(model).__name__, verdict.explain())
        assert len(history) >= CLIENTS * STEPS - 5
        assert verdict.ok
    assert check_history(tampered(queues.history()), QueueModel()).outcome is (
        Outcome.NOT_LINEARIZABLE
    )
