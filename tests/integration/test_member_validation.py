"""A bad member id or address never reaches the log, and one that does cannot hurt.

``add_member("d", "127.0.0.1:99999")`` used to be proposed, applied by every member and
crash each of them (in connect, or on the wire for a 300-byte id) on every restart,
because the bad value lived in the replicated directory. Now the caller's call is refused
before anything is proposed, and a bad entry that is in the log anyway (written by an
older version, or forged) is refused where it is applied: logged at ERROR, never used.
"""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import pytest
from cluster_helpers import Cluster

from replobj import errors
from replobj.raft.types import MAX_NODE_ID_BYTES

BAD_MEMBERS = [
    ("d", "127.0.0.1:99999"),
    ("d", "127.0.0.1:0"),
    ("d", "127.1:7999"),
    ("d", "no port"),
    ("d", "bad_host!:7001"),
    ("d", 7001),
    ("x" * (MAX_NODE_ID_BYTES + 45), "127.0.0.1:7999"),
    ("", "127.0.0.1:7999"),
    (123, "127.0.0.1:7999"),
]


async def serves_everywhere(cluster: Cluster, tag: str) -> None:
    """A command through every running node applies (each returns a growing count)."""
    for node_id in sorted(cluster.nodes):
        assert await cluster.proxies[node_id].add(f"{tag}-{node_id}") > 0


async def test_add_and_remove_member_refuse_bad_values_before_proposing(tmp_path: Path) -> None:
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        leader = cluster.nodes[await cluster.start_all()]
        await serves_everywhere(cluster, "before")
        last = leader.status().last_index
        for node_id, address in BAD_MEMBERS:
            with pytest.raises(errors.InvalidMemberError) as info:
                await leader.add_member(node_id, address)  # type: ignore[arg-type]
            assert "expected" in str(info.value)  # says what is accepted
        for node_id in ("", "x" * (MAX_NODE_ID_BYTES + 1), None):
            with pytest.raises(errors.InvalidMemberError, match="node_id"):
                await leader.remove_member(node_id)  # type: ignore[arg-type]
        assert leader.status().last_index == last  # nothing was proposed
        await serves_everywhere(cluster, "after")
        await cluster.close()


async def test_a_bad_directory_entry_in_the_log_is_refused_where_applied(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="replobj")
    async with anyio.create_task_group() as tasks:
        cluster = Cluster(tasks, tmp_path, 3)
        leader = cluster.nodes[await cluster.start_all()]
        await serves_everywhere(cluster, "before")
        for node_id, address in BAD_MEMBERS:  # bypass the caller's checks: straight to the log
            with pytest.raises(errors.InvalidMemberError):
                await leader._directory_call("add_member", (node_id, address, True), None)
        with pytest.raises(errors.InvalidMemberError):
            await leader._directory_call("remove_member", ("",), None)
        await leader._directory_call("register", ({"e": "127.0.0.1:99999"},), None)
        last = leader.status().last_index
        await cluster.wait_until(
            lambda: all(n.status().applied_index >= last for n in cluster.nodes.values())
        )
        await serves_everywhere(cluster, "applied")
        assert all("e" not in n.directory.addresses for n in cluster.nodes.values())
        assert all(n.status().voters == ("n0", "n1", "n2") for n in cluster.nodes.values())
        assert any("127.0.0.1:99999" in r.getMessage() for r in caplog.records)

        await cluster.close()  # restart on the same data: the entries are applied again
        caplog.clear()
        await cluster.start_all()
        await serves_everywhere(cluster, "restarted")
        assert any("127.0.0.1:99999" in r.getMessage() for r in caplog.records)
        await cluster.close()
