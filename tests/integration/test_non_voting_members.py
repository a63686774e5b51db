"""Non-voting members: read capacity that never slows or decides a commit.

Whole nodes in one process over TCP with RocksDB. A member added with ``voter=False``
receives the log and serves local and linearizable reads, but the voters alone commit:
with it running and two of three voters down, writes stop. Adding it again with
``voter=True`` promotes it; the membership survives a snapshot of the directory.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import anyio
import pytest
from cluster_helpers import Cluster, free_port

from replobj import errors
from replobj.directory import ClusterDirectory

pytestmark = pytest.mark.anyio


async def test_non_voting_member_serves_reads_counts_for_nothing_then_is_promoted(
    tmp_path: Path,
) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        leader = await cluster.start_all()
        cluster.addresses["n3"] = f"127.0.0.1:{free_port()}"
        await cluster.proxies[leader].add("before")
        await cluster.start("n3", join=True)
        await cluster.nodes["n1"].add_member("n3", cluster.addresses["n3"], voter=False)
        status = cluster.nodes["n1"].status()
        assert "n3" in status.learners
        assert "n3" not in status.voters

        await cluster.proxies["n3"].add("through-the-non-voter")
        assert await cluster.proxies["n3"].snapshot_values() == ["before", "through-the-non-voter"]
        assert await cluster.proxies["n3"].snapshot_values.local() == [
            "before",
            "through-the-non-voter",
        ]
        with pytest.raises(errors.InvalidConfigChangeError, match="is a voter"):
            await cluster.nodes["n3"].add_member("n0", cluster.addresses["n0"], voter=False)

        followers = [n for n in ("n0", "n1", "n2") if n != leader]
        for follower in followers:
            await cluster.stop(follower)
        with pytest.raises(errors.CallTimeoutError):  # n3's acknowledgement does not count
            await cluster.proxies[leader].add.call(("no quorum",), {}, timeout=1.0)
        for follower in followers:
            await cluster.start(follower)
        leader = await cluster.leader()

        await cluster.nodes["n3"].add_member("n3", cluster.addresses["n3"])  # promote
        await cluster.wait_until(lambda: "n3" in cluster.nodes[leader].status().voters)
        assert "n3" not in cluster.nodes[leader].status().learners
        await cluster.stop(next(n for n in followers if n != leader))  # 3 of 4 voters left
        await cluster.proxies["n3"].add("after")
        assert (await cluster.proxies["n3"].snapshot_values())[-1] == "after"
        await cluster.close()


def test_directory_snapshot_from_before_non_voting_members_restores_with_none() -> None:
    directory = ClusterDirectory()
    directory.add_member("d", "127.0.0.1:7004", voter=False)
    restored = pickle.loads(pickle.dumps(directory))
    assert restored.non_voters == {"d"}
    assert restored.wanted() == {"d": "127.0.0.1:7004"}
    restored.__setstate__({"addresses": {"a": "127.0.0.1:7001"}, "removed": set()})
    assert restored.non_voters == set()
    assert restored.wanted() == {"a": "127.0.0.1:7001"}
    restored.add_member("d", "127.0.0.1:7004", voter=False)
    restored.add_member("d", "127.0.0.1:7004")
    assert restored.non_voters == set()
