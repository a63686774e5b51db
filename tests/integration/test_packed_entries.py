"""Calls submitted together share one log entry, on a real cluster.

Many calls in flight from the leader and from a follower must each get their own result,
apply once, in one order on every replica, in far fewer entries than calls; a lone call
keeps its single-command entry; a payload submitted twice applies once; and packed
entries stay within the UDP transport's datagram.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from cluster_helpers import free_port

import replobj
from replobj.command import COMMAND_TAG, PACKED_TAG, decode_commands
from replobj.raft.types import EntryKind
from replobj.statemachine import ApplyOutcome

pytestmark = pytest.mark.anyio


SECRET = replobj.new_secret()
"""A random cluster secret for this module's nodes."""


@replobj.replicated
class Ledger:
    """Records every call with where it was applied from."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, int, int, int]] = []

    def add(self, tag: str, padding: str = "") -> int:
        """Record ``tag`` with its entry index, position and a draw; returns the row count."""
        entry = replobj.current_entry()
        draw = entry.random().randrange(1 << 30)
        self.rows.append((tag, entry.index, entry.position, draw))
        return len(self.rows)

    def add_list(self, tags: list[str]) -> int:
        """Record each of ``tags`` (a mutable argument: always decoded)."""
        for tag in tags:
            self.add(tag)
        return len(self.rows)


def _nodes(root: Path, size: int, transport: str = "tcp") -> tuple[dict[str, replobj.Node], Any]:
    addresses = {f"n{i}": f"127.0.0.1:{free_port()}" for i in range(size)}
    print(f"{transport} cluster addresses {addresses}, data under {root}")
    nodes = {
        node_id: replobj.Node(
            node_id,
            secret=SECRET,
            listen=address,
            peers=addresses,
            data_dir=root / node_id,
            transport=transport,
            election_timeout=0.4,
            heartbeat_interval=0.05,
        )
        for node_id, address in addresses.items()
    }
    proxies = {node_id: node.attach("ledger", Ledger()) for node_id, node in nodes.items()}
    return nodes, proxies


async def _converged(nodes: dict[str, replobj.Node], rows: int) -> list[Any]:
    with anyio.fail_after(10):
        while True:
            ledgers = [n.statemachine.objects["ledger"].rows for n in nodes.values()]
            if all(len(r) >= rows for r in ledgers):
                return ledgers
            await anyio.sleep(0.01)


async def test_concurrent_calls_share_entries_and_each_gets_its_own_result(
    tmp_path: Path,
) -> None:
    nodes, proxies = _nodes(tmp_path, 3)
    async with anyio.create_task_group() as tasks:
        for node in nodes.values():
            await tasks.start(node.serve)
        leader = await nodes["n0"].wait_for_leader()
        follower = next(n for n in nodes if n != leader)
        results: dict[str, int] = {}

        async def one_call(node_id: str, number: int) -> None:
            tag = f"{node_id}-{number}"
            if number % 10 == 0:
                results[tag] = await proxies[node_id].add_list([tag])
            else:
                results[tag] = await proxies[node_id].add(tag)

        async with anyio.create_task_group() as callers:
            for number in range(150):
                callers.start_soon(one_call, leader, number)
                callers.start_soon(one_call, follower, number)
        ledgers = await _converged(nodes, 300)
        assert ledgers[0] == ledgers[1] == ledgers[2]
        rows = ledgers[0]
        assert sorted(results.values()) == list(range(1, 301))
        for tag, count in results.items():
            assert rows[count - 1][0] == tag
        places = {(index, position) for _, index, position, _ in rows}
        assert len(places) == 300
        entries = {index for _, index, _, _ in rows}
        assert len(entries) < 100, f"300 calls in {len(entries)} entries"
        assert len({draw for *_, draw in rows}) == 300

        before = nodes[leader].runtime.raft.last_index
        assert await proxies[leader].add("alone") == 301
        raft = nodes[leader].runtime.raft
        # The entry carrying it: the node's own directory command may come first or share
        # it (seen under load), but an entry of one command is never packed.
        after = raft.entries_between(before + 1, raft.last_index + 1)
        carrying = [
            e
            for e in after
            if e.kind is EntryKind.COMMAND
            and any(c.args == ("alone",) for c in decode_commands(e.payload))
        ]
        assert len(carrying) == 1
        lone = carrying[0]
        if len(decode_commands(lone.payload)) == 1:
            assert lone.payload[0] == COMMAND_TAG
        else:  # shared with the node's own call, never with a caller's
            others = [c for c in decode_commands(lone.payload) if c.args != ("alone",)]
            assert all(c.object_name != "ledger" for c in others), others
        for node in nodes.values():
            await node.aclose()


async def test_a_payload_submitted_twice_applies_once(tmp_path: Path) -> None:
    nodes, _ = _nodes(tmp_path, 1)
    node = nodes["n0"]
    async with anyio.create_task_group() as tasks:
        await tasks.start(node.serve)
        await node.wait_for_leader()
        cmd, payload = node.new_command("ledger", "test_packed_entries.Ledger", "add", ("x",), {})
        deadline = time.monotonic() + 10
        twins = [node.runtime.submit(payload, deadline), node.runtime.submit(payload, deadline)]
        for ticket in twins:
            await ticket.wait()
        later = node.runtime.submit(payload, deadline)
        await later.wait()
        node.finish_command(cmd.seq)
        tickets = [*twins, later]
        outcomes = []
        for ticket in tickets:
            assert ticket.applied
            assert isinstance(ticket.result, ApplyOutcome)
            outcomes.append(ticket.result.commands[ticket.position])
        assert twins[0].proposal == twins[1].proposal
        assert later.proposal != twins[0].proposal
        assert [o.result() for o in outcomes] == [1, 1, 1]
        assert [o.duplicate for o in outcomes] == [False, True, True]
        assert len(node.statemachine.objects["ledger"].rows) == 1
        await node.aclose()


async def test_packed_entries_fit_a_udp_datagram(tmp_path: Path) -> None:
    nodes, proxies = _nodes(tmp_path, 3, transport="udp")
    async with anyio.create_task_group() as tasks:
        for node in nodes.values():
            await tasks.start(node.serve)
        leader = await nodes["n0"].wait_for_leader()
        follower = next(n for n in nodes if n != leader)
        padding = "p" * 3000

        async def one_call(node_id: str, number: int) -> None:
            await proxies[node_id].add(f"{node_id}-{number}", padding)

        async with anyio.create_task_group() as callers:
            for number in range(60):
                callers.start_soon(one_call, leader, number)
                callers.start_soon(one_call, follower, number)
        ledgers = await _converged(nodes, 120)
        assert ledgers[0] == ledgers[1] == ledgers[2]
        raft = nodes[leader].runtime.raft
        entries = raft.entries_between(raft.snapshot.last_index + 1, raft.last_index + 1)
        packed = [e for e in entries if e.payload[:1] == bytes([PACKED_TAG])]
        assert packed, "no call was packed with another"
        limit = nodes[leader].max_command_bytes
        assert max(len(e.payload) for e in packed) <= limit
        for node in nodes.values():
            await node.aclose()
