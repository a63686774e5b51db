"""A cluster that lost a majority of its data says so, and is recovered by force.

Three real nodes on RocksDB directories and TCP. Two members' data directories are wiped
and they are restarted to join (``join=True``), as docs/operations.md prescribes for a
lost disk; the third, the only one left with the log, can never be elected: both others
withhold their votes until a leader brings them up to date, and no leader can exist. The
survivor reports the stall (``Node.status().stalled``, an ERROR log naming the
withholding voters and each survivor's last index); restarted with
``force_new_cluster=True`` it leads alone with everything it holds, and the others are
added back.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from cluster_helpers import Cluster, free_port

import replobj
from replobj import errors

NODES = ("n0", "n1", "n2")
VALUES = [f"v{i}" for i in range(12)]


def members(tasks: anyio.abc.TaskGroup, root: Path) -> Cluster:
    """The three members; a wiped one rejoins knowing the others' addresses."""
    return Cluster(tasks, root, ids=NODES, election_timeout=0.3)


async def wait_until(cluster: Cluster, what: str, condition: Any, timeout: float = 15.0) -> None:
    """Poll ``condition`` (deadline-bounded) and say when it held."""
    await cluster.wait_until(condition, timeout)
    print(f"reached: {what}")


@pytest.mark.anyio
async def test_a_stalled_cluster_says_why_and_a_forced_survivor_recovers_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="replobj")
    async with anyio.create_task_group() as tasks:
        cluster = members(tasks, tmp_path)
        try:
            for node_id in NODES:
                await cluster.start(node_id)
            for value in VALUES:
                await cluster.proxies["n0"].add(value)
            for node_id in NODES:
                await wait_until(
                    cluster,
                    f"{node_id} applied everything",
                    lambda n=node_id: cluster.replicas[n].values == VALUES,
                )
            for node_id in NODES:
                await cluster.stop(node_id)
            for node_id in ("n0", "n1"):  # two disks lost: a majority
                shutil.rmtree(tmp_path / node_id)
                await cluster.start(node_id, join=True, peers=dict(cluster.addresses))
            survivor = await cluster.start("n2")
            held = survivor.status().last_index

            await wait_until(cluster, "n2 reports the stall", lambda: survivor.status().stalled)
            stall = survivor.status().stalled
            assert stall is not None
            assert stall.withholding == {"n0": 0, "n1": 0}
            assert stall.survivors == {"n2": held}
            assert all(n.status().leader is None for n in cluster.nodes.values())
            stalled_logs = [r for r in caplog.records if "CLUSTER STALLED" in r.getMessage()]
            assert len(stalled_logs) == 1, [r.getMessage() for r in stalled_logs]
            assert stalled_logs[0].levelno == logging.ERROR
            assert "force_new_cluster" in stalled_logs[0].getMessage()
            with pytest.raises(errors.ClusterStalledError, match="force_new_cluster") as timed:
                await cluster.proxies["n2"].add.call(("while stalled",), {}, timeout=1.0)
            assert isinstance(timed.value, errors.CallTimeoutError)
            assert timed.value.outcome_known

            await cluster.stop("n2")
            forced = await cluster.start("n2", force_new_cluster=True)
            await wait_until(cluster, "n2 leads alone", lambda: forced.status().role == "leader")
            assert forced.status().voters == ("n2",)
            assert await cluster.proxies["n2"].snapshot_values() == VALUES
            lost = [r.getMessage() for r in caplog.records if "cannot be known" in r.getMessage()]
            assert lost, "the forced start did not say what may have been lost"

            for node_id in ("n0", "n1"):
                await forced.add_member(node_id, cluster.addresses[node_id])
            assert forced.status().voters == NODES
            await cluster.proxies["n2"].add("after recovery")
            for node_id in ("n0", "n1"):
                await wait_until(
                    cluster,
                    f"{node_id} caught up",
                    lambda n=node_id: cluster.replicas[n].values == [*VALUES, "after recovery"],
                )
            assert forced.status().stalled is None
        finally:
            await cluster.close()


def test_force_new_cluster_is_refused_with_join_or_on_an_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigurationError, match="join=True"):
        replobj.Node(
            "n0",
            listen="127.0.0.1:1",
            join=True,
            force_new_cluster=True,
            secret=replobj.new_secret(),
        )

    async def start_empty() -> None:
        node = replobj.Node(
            "n0",
            listen=f"127.0.0.1:{free_port()}",
            data_dir=tmp_path,
            force_new_cluster=True,
            secret=replobj.new_secret(),
        )
        async with node:
            pass

    with pytest.raises(errors.ConfigurationError, match="is empty"):
        anyio.run(start_empty)
