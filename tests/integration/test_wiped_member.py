"""A member whose data directory is wiped, restarted under its old id with the same peers.

Real member processes with RocksDB directories. The wiped member comes back with an empty
log: the leader must notice (its rejections are newer than its last acknowledgement) and
send it everything again without a leader change, it must not vote until it holds what was
committed when it came back, and afterwards it is a full member again (restarted to join,
as docs/operations.md prescribes; with its founding arguments the refill works the same,
but its vote is not guarded): it can help elect a
new leader when the old one is killed, and nothing acknowledged is lost.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import anyio
import pytest
from proc_workload import AppendWorkload, process_cluster


@pytest.mark.anyio
@pytest.mark.parametrize("join", [True, False], ids=["join", "founder-args"])
async def test_wiped_member_is_refilled_and_then_helps_elect_without_losing_anything(
    tmp_path: Path, anyio_backend: str, join: bool
) -> None:
    async with process_cluster(tmp_path, anyio_backend) as cluster:
        await cluster.start(["a", "b", "c"])
        leader = await cluster.wait_for_leader()
        wiped, other = (node for node in sorted(cluster.members) if node != leader)
        term = (await cluster.members[leader].status())["term"]
        workload = AppendWorkload(cluster)
        stop = anyio.Event()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(workload.run, [leader, other], stop)
            await workload.wait_acknowledged(40)
            await cluster.kill(wiped)
            shutil.rmtree(cluster.specs[wiped].data_dir)
            await cluster.spawn(dataclasses.replace(cluster.specs[wiped], join=join))
            await workload.wait_acknowledged(len(workload.acknowledged) + 40)
            stop.set()
        await cluster.wait_caught_up([wiped])
        status = await cluster.members[wiped].status()
        assert status["term"] == term, "the wiped member was refilled only after an election"
        await workload.assert_exactly_once([leader, other, wiped])

        await cluster.kill(leader)
        new_leader = await cluster.wait_for_leader([wiped, other], newer_than=leader)
        assert new_leader in {wiped, other}
        await workload.append(new_leader, 0)
        await workload.assert_exactly_once([wiped, other])
