"""Members as real OS processes with RocksDB directories: crashes, restarts, membership.

Each member is ``python -m replobj.demo member`` on the test's anyio backend, driven
over its JSON-lines control channel. Clients append unique values, so the journals
read back with linearizable reads show any lost or duplicated command. On failure,
pytest prints every member's address, pid, data directory and log tail.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from proc_workload import AppendWorkload, process_cluster

from replobj.demo import STORE

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.anyio
async def test_leader_kill_during_a_command_stream_loses_and_repeats_nothing(
    tmp_path: Path, anyio_backend: str
) -> None:
    async with process_cluster(tmp_path, anyio_backend) as cluster:
        await cluster.start(["a", "b", "c"])
        leader = await cluster.wait_for_leader()
        workload = AppendWorkload(cluster)
        stop = anyio.Event()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(workload.run, ["a", "b", "c"], stop)
            await workload.wait_acknowledged(30)
            await cluster.kill(leader)
            before_kill = len(workload.acknowledged)
            survivors = sorted(cluster.members)
            new_leader = await cluster.wait_for_leader(survivors, newer_than=leader)
            await workload.wait_acknowledged(before_kill + 30)
            stop.set()
        assert new_leader in survivors
        await workload.assert_exactly_once(survivors)

        await cluster.restart(leader)
        await cluster.wait_caught_up([leader])
        journal = await workload.assert_exactly_once(["a", "b", "c"])
        assert len(journal) >= len(workload.acknowledged) >= before_kill + 30


@pytest.mark.anyio
async def test_restarted_members_catch_up_from_their_data_dirs_and_a_snapshot(
    tmp_path: Path, anyio_backend: str
) -> None:
    async with process_cluster(tmp_path, anyio_backend) as cluster:
        await cluster.start(["a", "b", "c"])
        leader = await cluster.wait_for_leader()
        lagging, other = (node for node in sorted(cluster.members) if node != leader)
        workload = AppendWorkload(cluster)
        for number in range(10):
            await workload.append(leader, number)
        await cluster.wait_caught_up([lagging, other])
        await cluster.kill(lagging)
        for number in range(20):
            await workload.append(leader, number)
        await cluster.wait_caught_up([other])
        snapshots = [await cluster.members[n].request("snapshot") for n in (leader, other)]
        assert min(snapshots) > 10

        # With the old leader gone too, the lagging member can only catch up from
        # `other`, whose log no longer holds what it missed: it must install a snapshot.
        await cluster.kill(leader)
        restarted = await cluster.restart(lagging)
        assert await cluster.wait_for_leader([lagging, other]) == other
        await cluster.wait_caught_up([lagging])
        status = await restarted.status()
        assert status["snapshot_index"] >= min(snapshots)
        assert await restarted.local(STORE, "entries") == workload.acknowledged
        for number in range(5):
            await workload.append(lagging, number)

        await cluster.restart(leader)
        await cluster.wait_caught_up([leader])
        journal = await workload.assert_exactly_once(["a", "b", "c"])
        assert len(journal) == 35


@pytest.mark.anyio
async def test_a_member_joins_while_commands_flow(tmp_path: Path, anyio_backend: str) -> None:
    async with process_cluster(tmp_path, anyio_backend) as cluster:
        await cluster.start(["a", "b", "c"])
        await cluster.wait_for_leader()
        workload = AppendWorkload(cluster)
        stop = anyio.Event()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(workload.run, ["a", "b", "c"], stop)
            await workload.wait_acknowledged(20)
            await cluster.add_member("d", via="b")
            joined_at = len(workload.acknowledged)
            await workload.wait_acknowledged(joined_at + 20)
            stop.set()
        status = await cluster.members["d"].status()
        assert status["voters"] == ["a", "b", "c", "d"]
        await cluster.wait_caught_up(["d"])
        await workload.assert_exactly_once(["a", "b", "c", "d"])
        assert await cluster.members["d"].call(STORE, "put", "k", "v") is None
        assert await cluster.members["a"].read(STORE, "get", "k") == "v"


@pytest.mark.anyio
async def test_removing_the_leader_hands_leadership_over(
    tmp_path: Path, anyio_backend: str
) -> None:
    async with process_cluster(tmp_path, anyio_backend) as cluster:
        await cluster.start(["a", "b", "c"])
        leader = await cluster.wait_for_leader()
        workload = AppendWorkload(cluster)
        for number in range(5):
            await workload.append(leader, number)

        await cluster.remove_member(leader, via=leader)
        remaining = sorted(cluster.members)
        assert leader not in remaining
        successor = await cluster.wait_for_leader(remaining, newer_than=leader)
        status = await cluster.members[successor].status()
        assert status["voters"] == remaining
        for node in remaining:
            assert await workload.append(node, 0)
        await workload.assert_exactly_once(remaining)


@pytest.mark.anyio
async def test_a_five_member_cluster_survives_two_kills(tmp_path: Path, anyio_backend: str) -> None:
    async with process_cluster(tmp_path, anyio_backend) as cluster:
        await cluster.start(["a", "b", "c", "d", "e"])
        first = await cluster.wait_for_leader()
        workload = AppendWorkload(cluster)
        stop = anyio.Event()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(workload.run, sorted(cluster.members), stop, 1)
            await workload.wait_acknowledged(15)
            await cluster.kill(first)
            second = await cluster.wait_for_leader(sorted(cluster.members), newer_than=first)
            await workload.wait_acknowledged(len(workload.acknowledged) + 15)
            await cluster.kill(second)
            survivors = sorted(cluster.members)
            third = await cluster.wait_for_leader(survivors, newer_than=second)
            await workload.wait_acknowledged(len(workload.acknowledged) + 15)
            stop.set()
        assert len(survivors) == 3
        assert third in survivors
        await workload.assert_exactly_once(survivors)


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "replobj.demo"],
        [str(EXAMPLES / "counter.py")],
        [str(EXAMPLES / "kv.py")],
        [str(EXAMPLES / "lock.py")],
    ],
    ids=["demo", "counter", "kv", "lock"],
)
def test_the_demo_and_the_examples_run_and_exit_0(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, *command], capture_output=True, text=True, timeout=120, check=False
    )
    print(result.stdout)
    print(result.stderr)
    assert result.returncode == 0
    assert "all checks passed" in result.stdout
