"""The call hot path's own machinery: the per-call wake-up flag and ticket bookkeeping."""

from __future__ import annotations

import time

import anyio
import pytest
from cluster_helpers import Register, free_port

import replobj
from replobj.runtime import RaftRuntime
from replobj.waiting import Flag

pytestmark = pytest.mark.anyio


SECRET = replobj.new_secret()
"""A random cluster secret for this module's nodes."""


async def test_a_flag_wakes_every_waiter_once_set_and_survives_cancelled_waiters() -> None:
    flag = Flag()
    woken: list[int] = []

    async def waiter(number: int) -> None:
        await flag.wait()
        woken.append(number)

    async with anyio.create_task_group() as tasks:
        with anyio.CancelScope() as abandoned:
            tasks.start_soon(waiter, 0)
            for number in (1, 2, 3):
                tasks.start_soon(waiter, number)
            await anyio.wait_all_tasks_blocked()
            abandoned.cancel()
        await anyio.wait_all_tasks_blocked()
        assert woken == []
        flag.set()
        flag.set()
    assert sorted(woken) == [0, 1, 2, 3]
    assert flag.is_set
    await flag.wait()


async def test_a_waiter_cancelled_before_the_flag_is_set_is_not_woken() -> None:
    flag = Flag()
    woken: list[str] = []

    async def waiter() -> None:
        await flag.wait()
        woken.append("woken")

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        tasks.cancel_scope.cancel()
    flag.set()
    assert woken == []
    assert flag.is_set


async def test_finished_calls_are_not_kept_until_their_deadline() -> None:
    node = replobj.Node(
        "n0", secret=SECRET, listen=f"127.0.0.1:{free_port()}", election_timeout=0.4
    )
    register = node.attach("reg", Register())
    async with anyio.create_task_group() as tasks:
        await tasks.start(node.serve)
        await node.wait_for_leader()
        runtime: RaftRuntime = node.runtime

        async def caller(number: int) -> None:
            for round_ in range(5):
                await register.add(f"{number}-{round_}")

        async with anyio.create_task_group() as callers:
            for number in range(50):
                callers.start_soon(caller, number)
        finished = time.monotonic()
        values = await register.snapshot_values.local()
        assert sorted(values) == sorted(f"{n}-{r}" for r in range(5) for n in range(50))
        # A call's deadline is 2 * election_timeout = 0.8 s after it was sent: tickets held
        # until then would still be watched long after the sweep (every 20 ms) ran.
        with anyio.fail_after(0.5):
            while runtime.pending_tickets:  # noqa: ASYNC110 - the expiry sweep runs every 20 ms
                await anyio.sleep(0.01)
        assert time.monotonic() - finished < 0.5
        await node.aclose()
