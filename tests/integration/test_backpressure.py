"""Backpressure: ``Node(max_pending_calls=...)`` bounds the calls in flight on a node.

Real nodes in one process (TCP on loopback, RocksDB), both anyio backends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from cluster_helpers import Cluster

from replobj import errors

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # trio: the full-node test below
async def test_twenty_thousand_callers_under_a_bound_of_a_thousand_all_complete(
    tmp_path: Path,
) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3, max_pending_calls=1000, call_timeout=60.0)
        leader = await cluster.start_all()
        node, register = cluster.nodes[leader], cluster.proxies[leader]
        most = {"in_flight": 0, "waiting": 0, "own": 0}
        encode = node.new_command

        def counted(*args: Any) -> Any:
            made = encode(*args)
            if args[0] != "reg":  # the node's own (its member directory): not bounded
                most["own"] += 1
            most["in_flight"] = max(most["in_flight"], len(node._in_flight))
            most["waiting"] = max(most["waiting"], node._room.waiting)
            return made

        node.new_command = counted  # type: ignore[method-assign]
        results: list[int] = []

        async def caller(number: int) -> None:
            results.append(await register.add(f"v{number}"))

        async with anyio.create_task_group() as callers:
            for number in range(20_000):
                callers.start_soon(caller, number)
        print(most)
        assert sorted(results) == list(range(1, 20_001)), "a call was lost or applied twice"
        assert most["in_flight"] <= 1000 + most["own"], most
        assert most["waiting"] > 10_000, "the bound never held callers back"
        assert node._room.waiting == 0
        assert len(node._in_flight) == 0
        await cluster.close()


async def test_a_full_node_refuses_nowait_calls_and_times_out_waiting_ones(
    tmp_path: Path,
) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3, max_pending_calls=2)
        leader = await cluster.start_all()
        register = cluster.proxies[leader]
        followers = [n for n in cluster.nodes if n != leader]
        for follower in followers:  # no majority: nothing commits, calls stay in flight
            await cluster.stop(follower)
        finished: list[int] = []

        async def pending(value: str) -> None:
            finished.append(await register.add(value))

        async with anyio.create_task_group() as calls:
            calls.start_soon(pending, "a")
            calls.start_soon(pending, "b")
            node = cluster.nodes[leader]
            # Full: both calls in flight (or one, beside the node's own directory call,
            # and the other waiting for room).
            await cluster.wait_until(lambda: not node._room.has_room(len(node._in_flight), 1))
            with pytest.raises(errors.TooManyPendingCallsError, match="max_pending_calls=2"):
                await register.add.call(("c",), {}, nowait=True)
            with pytest.raises(errors.TooManyPendingCallsError):
                await register.add.many(["d", "e"], nowait=True)
            with pytest.raises(errors.CallTimeoutError, match="found no room") as caught:
                await register.add.call(("f",), {}, timeout=0.3)
            assert caught.value.outcome_known, "nothing was sent"
            for follower in followers:
                await cluster.start(follower)
        assert sorted(finished) == [1, 2]
        assert await register.add.call(("g",), {}, nowait=True) == 3
        values = await register.snapshot_values()
        assert sorted(values[:2]) == ["a", "b"]
        assert values[2:] == ["g"], "a refused or timed-out call was applied"
        await cluster.close()


def test_max_pending_calls_must_be_a_positive_int(tmp_path: Path) -> None:
    from cluster_helpers import SECRET

    import replobj

    for bad in (0, -1, 1.5, "10"):
        with pytest.raises(errors.ConfigurationError, match="max_pending_calls"):
            replobj.Node(
                "a",
                listen="127.0.0.1:7999",
                peers={"a": "127.0.0.1:7999"},
                data_dir=tmp_path / "a",
                secret=SECRET,
                max_pending_calls=bad,  # type: ignore[arg-type]
            )
