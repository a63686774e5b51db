"""A received snapshot that is not a valid state is refused before it replaces anything.

A peer that passed the handshake (it knows the secret) sends InstallSnapshot chunks whose
bytes are garbage. The follower must check the bytes in a fresh state before committing
the switch: it refuses them (naming the sender), keeps its own data (so it restarts
fine), and installs the next, good, snapshot.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from cluster_helpers import Cluster

import replobj
from replobj.raft.messages import InstallSnapshot, Message
from replobj.raft.types import NodeId
from replobj.transport import FaultyTransport, Transport

NODES = ("a", "b", "c")


class GarblingTransport(FaultyTransport):
    """Replaces the bytes of outgoing snapshot chunks with garbage while ``garble`` is set."""

    garble = False
    garbled = 0

    def send(self, to: NodeId, message: Message) -> None:
        """Garble InstallSnapshot data (same length, so offsets stay consistent)."""
        if GarblingTransport.garble and isinstance(message, InstallSnapshot):
            junk = b"\x01" + b"\x00" * (len(message.data) - 1) if message.offset == 0 else None
            data = junk if junk is not None else b"\x00" * len(message.data)
            message = dataclasses.replace(message, data=data[: len(message.data)])
            GarblingTransport.garbled += 1
        super().send(to, message)


class Trio(Cluster):
    """Three nodes on RocksDB directories with garbling transports and small snapshots."""

    def __init__(self, tasks: anyio.abc.TaskGroup, root: Path) -> None:
        """Pick the addresses; nothing starts yet."""
        super().__init__(tasks, root, ids=NODES, election_timeout=0.3, snapshot_entries=5)
        self.links: dict[str, GarblingTransport] = {}

    async def start(self, node_id: str, **options: Any) -> replobj.Node:
        """Start ``node_id`` on its directory, its links wrapped in a garbling transport."""

        def wrap(inner: Transport) -> Transport:
            link = self.links[node_id] = GarblingTransport(inner, seed=3)
            return link

        return await super().start(node_id, wrap_transport=wrap, call_timeout=5.0, **options)

    def isolate(self, node_id: str) -> None:
        """Cut every link to and from ``node_id`` (nothing is queued for later)."""
        for other, link in self.links.items():
            if other != node_id:
                link.partition(node_id)
                self.links[node_id].partition(other)

    def heal(self) -> None:
        """Restore every link."""
        for link in self.links.values():
            link.heal()


def values_of(node: replobj.Node) -> list[str]:
    """The register's values on ``node``'s replica."""
    return list(node.statemachine.objects["reg"].values)


@pytest.mark.anyio
async def test_a_garbage_snapshot_is_refused_and_a_good_one_installed_later(
    tmp_path: Path, anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    GarblingTransport.garble, GarblingTransport.garbled = False, 0
    caplog.set_level(logging.INFO, logger="replobj")
    async with anyio.create_task_group() as tasks:
        trio = Trio(tasks, tmp_path)
        for node_id in NODES:
            await trio.start(node_id)
        await trio.proxies["a"].add("first")
        await trio.wait_until(lambda: values_of(trio.nodes["c"]) == ["first"])
        trio.isolate("c")  # c falls behind while running; no message waits in a queue
        for i in range(12):
            await trio.proxies["a"].add(f"v{i}")
        for node_id in ("a", "b"):
            await trio.nodes[node_id].snapshot()
        wanted = values_of(trio.nodes["a"])

        c = trio.nodes["c"]
        own_snapshot = c.status().snapshot_index
        GarblingTransport.garble = True
        trio.heal()
        await trio.wait_until(
            lambda: any("refused a snapshot" in r.getMessage() for r in caplog.records)
        )
        refusal = next(
            r.getMessage() for r in caplog.records if "refused a snapshot" in r.getMessage()
        )
        leader = trio.nodes["a"].status().leader
        assert leader is not None
        assert repr(leader) in refusal, refusal
        assert GarblingTransport.garbled > 0
        assert values_of(c) == ["first"]  # nothing of the garbage reached the state
        assert c.status().role == "follower"

        await trio.nodes.pop("c").aclose()  # restarts fine on its own data
        c = await trio.start("c")
        assert c.status().snapshot_index == own_snapshot  # the garbage was never committed
        GarblingTransport.garble = False
        await trio.wait_until(lambda: values_of(trio.nodes["c"]) == wanted)
        assert trio.nodes["c"].status().snapshot_index > 1
        await trio.close()
