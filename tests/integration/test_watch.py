"""``node.watch(name, since=...)``: applied calls in log order, resumable without gap or
duplicate across a leader change and a restart. Real nodes in one process (TCP on
loopback, RocksDB), both anyio backends."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from cluster_helpers import Cluster

import replobj
from replobj import errors

pytestmark = pytest.mark.anyio


async def _collect(watch: object, into: list[replobj.Change], count: int) -> None:
    async for change in watch:  # type: ignore[attr-defined]
        into.append(change)
        if len(into) >= count:
            return


async def test_a_watcher_sees_every_applied_call_in_order_with_its_result(tmp_path: Path) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        leader = await cluster.start_all()
        follower = next(n for n in cluster.nodes if n != leader)
        seen: list[replobj.Change] = []
        with anyio.fail_after(20):
            async with anyio.create_task_group() as watching:
                watching.start_soon(_collect, cluster.nodes[follower].watch("reg"), seen, 8)
                await anyio.wait_all_tasks_blocked()
                await cluster.proxies[leader].add("a")
                await cluster.proxies[follower].add("b")
                with pytest.raises(ValueError, match="boom"):
                    await cluster.proxies[leader].fail("boom")
                await cluster.proxies[leader].add.many(["c", "d", "e", "f"])
                await cluster.proxies[follower].add("g")
        assert [c.method for c in seen] == ["add", "add", "fail"] + ["add"] * 5
        assert [c.args[0] for c in seen if c.method == "add"] == list("abcdefg")
        assert [c.result for c in seen if c.method == "add"] == [1, 2, 1003, 1004, 1005, 1006, 1007]
        failed = seen[2]
        assert isinstance(failed.error, ValueError)
        assert failed.result is None
        order = [(c.index, c.position) for c in seen]
        assert order == sorted(order)
        assert len(set(order)) == len(order)
        assert len({c.index for c in seen[3:7]}) == 1, "a batch shares one entry"
        assert all(c.timestamp > 0 for c in seen)
        # From an index: the same history again, from any member.
        again: list[replobj.Change] = []
        with anyio.fail_after(10):
            await _collect(cluster.nodes[leader].watch("reg", since=seen[1].index), again, 7)
        assert [(c.index, c.position, c.args) for c in again] == [
            (c.index, c.position, c.args) for c in seen[1:]
        ]
        await cluster.close()


async def test_watch_resumes_across_a_leader_change_and_a_restart_without_gap_or_duplicate(
    tmp_path: Path,
) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        leader = await cluster.start_all()
        watcher = next(n for n in cluster.nodes if n != leader)
        writer = next(n for n in cluster.nodes if n not in (leader, watcher))
        seen: list[replobj.Change] = []
        stop_writing = anyio.Event()

        async def write() -> None:
            number = 0
            while not stop_writing.is_set():
                try:
                    await cluster.proxies[writer].add(f"v{number}")
                except errors.CallTimeoutError:  # a slow election: the call may retry
                    continue
                number += 1

        async def watch_until_stopped() -> None:
            since = seen[-1].index + 1 if seen else 1
            try:
                async for change in cluster.nodes[watcher].watch("reg", since=since):
                    seen.append(change)  # noqa: PERF401 - others read it meanwhile
            except errors.NodeStoppedError:
                return

        with anyio.fail_after(60):
            async with anyio.create_task_group() as watching:
                async with anyio.create_task_group() as load:
                    load.start_soon(write)
                    watching.start_soon(watch_until_stopped)
                    await cluster.wait_until(lambda: len(seen) >= 20)
                    await cluster.stop(leader)  # a leader change
                    await cluster.start(leader)
                    await cluster.wait_until(lambda: len(seen) >= 40)
                    await cluster.stop(watcher)  # the watcher's own member restarts
                    await cluster.start(watcher)
                    watching.start_soon(watch_until_stopped)  # resume after the last seen
                    await cluster.wait_until(lambda: len(seen) >= 70)
                    stop_writing.set()
                applied = await cluster.proxies[writer].snapshot_values()
                await cluster.wait_until(lambda: len(seen) >= len(applied))
                watching.cancel_scope.cancel()
        assert [c.args[0] for c in seen] == applied, "a gap or a duplicate"
        order = [(c.index, c.position) for c in seen]
        assert order == sorted(order)
        assert len(set(order)) == len(order)
        await cluster.close()


async def test_watch_refuses_what_it_cannot_give(tmp_path: Path) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3, watch_history=5)
        leader = await cluster.start_all()
        node = cluster.nodes[leader]
        for number in range(12):
            await cluster.proxies[leader].add(f"v{number}")
        with pytest.raises(errors.WatchCompactedError, match="resume with since=") as caught:
            async for _ in node.watch("reg", since=1):
                pass
        oldest = caught.value.oldest
        assert oldest > 1
        resumed: list[replobj.Change] = []
        with anyio.fail_after(10):
            await _collect(node.watch("reg", since=oldest), resumed, 1)
        assert resumed[0].index >= oldest
        with pytest.raises(errors.UnknownObjectError, match="nothing is attached as 'nope'"):
            node.watch("nope")
        for bad in (0, -3, 1.5, "2"):
            with pytest.raises(errors.ConfigurationError, match="since"):
                node.watch("reg", since=bad)  # type: ignore[arg-type]
        await cluster.close()
    with pytest.raises(errors.NodeStoppedError):
        async for _ in node.watch("reg"):
            pass


async def test_a_watcher_keeps_what_it_has_not_read_even_with_no_history(tmp_path: Path) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3, watch_history=0)
        leader = await cluster.start_all()
        node = cluster.nodes[leader]
        watcher = node.watch("reg")
        for number in range(20):
            await cluster.proxies[leader].add(f"v{number}")
        seen: list[replobj.Change] = []
        with anyio.fail_after(10):
            await _collect(watcher, seen, 20)
        assert [c.args[0] for c in seen] == [f"v{n}" for n in range(20)]
        first = seen[0].index
        del watcher  # nobody needs the old entries now: they go with the next one
        await cluster.proxies[leader].add("last")
        with pytest.raises(errors.WatchCompactedError) as caught:
            async for _ in node.watch("reg", since=first):
                pass
        assert caught.value.oldest > first
        await cluster.close()
