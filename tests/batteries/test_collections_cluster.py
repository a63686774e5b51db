"""The collection batteries on a real 3-node cluster: calls through every member, the same
state on every replica, and the same state again after members restart from their log and
from a snapshot."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from replobj import errors
from replobj.batteries import Counter, Dict, List, Queue, Register, Set

from .helpers import BatteryCluster

pytestmark = pytest.mark.anyio

FACTORIES = {
    "counter": Counter,
    "register": lambda: Register(0),
    "dict": Dict,
    "set": Set,
    "list": List,
    "queue": lambda: Queue("jobs"),
}

EXPECTED = {
    ("counter", "get"): 4,
    ("register", "get"): 2,
    ("dict", "items"): [("b", [1, 2]), ("c", 3)],
    ("set", "members"): [f"s{i}" for i in range(1, 20)],
    ("list", "slice"): ["x", "a", "b"],
    ("queue", "len"): 1,
}


async def test_collections_apply_the_same_everywhere_and_after_a_replay(tmp_path: Path) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = BatteryCluster(tasks, tmp_path, FACTORIES)
        leader = await cluster.start_all()
        members = [cluster.objects[node_id] for node_id in sorted(cluster.nodes)]
        one, two, three = members

        assert await one["counter"].incr(5) == 5
        assert await two["counter"].decr() == 4
        assert await three["register"].compare_and_set(1, 9) is False
        assert await one["register"].compare_and_set(0, 1) is True
        await two["register"].set(2)

        await one["dict"].set("a", 1)
        assert await two["dict"].setdefault("b", [1, 2]) == [1, 2]
        assert await three["dict"].pop("a") == 1
        with pytest.raises(KeyError):
            await one["dict"].pop("a")
        assert await two["dict"].delete("a") is False
        await three["dict"].set("c", 3)
        assert await one["dict"].contains("b") is True
        assert await two["dict"].get("zz", "none") == "none"

        assert await one["set"].update([f"s{i}" for i in range(20)]) == 20
        assert await two["set"].add("s3") is False
        assert await three["set"].pop() == "s0"  # oldest first, whatever the hashes

        await one["list"].extend(["a", "b", "c"])
        await two["list"].insert(0, "x")
        assert await three["list"].pop() == "c"
        assert await one["list"].get(-1) == "b"

        for job in ("j1", "j2"):
            await one["queue"].put(job)
        assert await two["queue"].peek() == "j1"
        assert await three["queue"].pop() == "j1"

        for (name, query), expected in EXPECTED.items():
            assert await cluster.same_everywhere(name, query) == expected, (name, query)

        replayed, restored = cluster.followers(leader)
        snapshot_index = await cluster.nodes[restored].snapshot()  # its state, pickled
        await cluster.objects[leader]["counter"].incr(0)  # one entry after the snapshot
        for node_id in (replayed, restored):
            print(f"restarting {node_id}: objects rebuilt from its RocksDB log (and snapshot)")
            await cluster.stop(node_id)
            await cluster.start(node_id)
        assert cluster.nodes[restored].status().snapshot_index == snapshot_index > 0
        assert cluster.nodes[replayed].status().snapshot_index == 0
        await cluster.objects[replayed]["counter"].get()  # caught up past a barrier
        for (name, query), expected in EXPECTED.items():
            assert await cluster.same_everywhere(name, query) == expected, (name, query)

        assert await cluster.objects[replayed]["queue"].pop() == "j2"
        with pytest.raises(errors.QueueEmptyError, match="jobs is empty"):
            await cluster.objects[leader]["queue"].pop()
        await cluster.close()
