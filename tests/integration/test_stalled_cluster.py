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
from cluster_helpers import Register, free_port

import replobj
from replobj import errors

NODES = ("n0", "n1", "n2")
VALUES = [f"v{i}" for i in range(12)]
SECRET = replobj.new_secret()


class Members:
    """Start and stop the three members on their directories under ``root``."""

    def __init__(self, tasks: anyio.abc.TaskGroup, root: Path) -> None:
        self.tasks, self.root = tasks, root
        self.addresses = {node: f"127.0.0.1:{free_port()}" for node in NODES}
        self.nodes: dict[str, replobj.Node] = {}
        self.proxies: dict[str, Any] = {}
        self.replicas: dict[str, Register] = {}
        print(f"cluster {self.addresses}, data under {root}")

    async def start(self, node_id: str, **options: bool) -> replobj.Node:
        node = replobj.Node(
            node_id,
            listen=self.addresses[node_id],
            peers=dict(self.addresses),
            data_dir=self.root / node_id,
            election_timeout=0.3,
            heartbeat_interval=0.05,
            call_timeout=10.0,
            secret=SECRET,
            **options,
        )
        self.replicas[node_id] = Register()
        self.proxies[node_id] = node.attach("reg", self.replicas[node_id])
        await self.tasks.start(node.serve)
        self.nodes[node_id] = node
        return node

    async def stop(self, node_id: str) -> None:
        await self.nodes.pop(node_id).aclose()

    async def wait_until(self, what: str, condition: Any, timeout: float = 15.0) -> None:
        with anyio.fail_after(timeout):
            while not condition():  # noqa: ASYNC110 - polling state the nodes expose
                await anyio.sleep(0.02)
        print(f"reached: {what}")

    async def close(self) -> None:
        for node_id in list(self.nodes):
            await self.stop(node_id)


@pytest.mark.anyio
async def test_a_stalled_cluster_says_why_and_a_forced_survivor_recovers_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="replobj")
    async with anyio.create_task_group() as tasks:
        members = Members(tasks, tmp_path)
        try:
            for node_id in NODES:
                await members.start(node_id)
            for value in VALUES:
                await members.proxies["n0"].add(value)
            for node_id in NODES:
                await members.wait_until(
                    f"{node_id} applied everything",
                    lambda n=node_id: members.replicas[n].values == VALUES,
                )
            for node_id in NODES:
                await members.stop(node_id)
            for node_id in ("n0", "n1"):  # two disks lost: a majority
                shutil.rmtree(tmp_path / node_id)
                await members.start(node_id, join=True)
            survivor = await members.start("n2")
            held = survivor.status().last_index

            await members.wait_until("n2 reports the stall", lambda: survivor.status().stalled)
            stall = survivor.status().stalled
            assert stall is not None
            assert stall.withholding == {"n0": 0, "n1": 0}
            assert stall.survivors == {"n2": held}
            assert all(n.status().leader is None for n in members.nodes.values())
            stalled_logs = [r for r in caplog.records if "CLUSTER STALLED" in r.getMessage()]
            assert len(stalled_logs) == 1, [r.getMessage() for r in stalled_logs]
            assert stalled_logs[0].levelno == logging.ERROR
            assert "force_new_cluster" in stalled_logs[0].getMessage()
            with pytest.raises(errors.ClusterStalledError, match="force_new_cluster") as timed:
                await members.proxies["n2"].add.call(("while stalled",), {}, timeout=1.0)
            assert isinstance(timed.value, errors.CallTimeoutError)
            assert timed.value.outcome_known

            await members.stop("n2")
            forced = await members.start("n2", force_new_cluster=True)
            await members.wait_until("n2 leads alone", lambda: forced.status().role == "leader")
            assert forced.status().voters == ("n2",)
            assert await members.proxies["n2"].snapshot_values() == VALUES
            lost = [r.getMessage() for r in caplog.records if "cannot be known" in r.getMessage()]
            assert lost, "the forced start did not say what may have been lost"

            for node_id in ("n0", "n1"):
                await forced.add_member(node_id, members.addresses[node_id])
            assert forced.status().voters == NODES
            await members.proxies["n2"].add("after recovery")
            for node_id in ("n0", "n1"):
                await members.wait_until(
                    f"{node_id} caught up",
                    lambda n=node_id: members.replicas[n].values == [*VALUES, "after recovery"],
                )
            assert forced.status().stalled is None
        finally:
            await members.close()


def test_force_new_cluster_is_refused_with_join_or_on_an_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigurationError, match="join=True"):
        replobj.Node("n0", listen="127.0.0.1:1", join=True, force_new_cluster=True, secret=SECRET)

    async def start_empty() -> None:
        node = replobj.Node(
            "n0",
            listen=f"127.0.0.1:{free_port()}",
            data_dir=tmp_path,
            force_new_cluster=True,
            secret=SECRET,
        )
        async with node:
            pass

    with pytest.raises(errors.ConfigurationError, match="is empty"):
        anyio.run(start_empty)
