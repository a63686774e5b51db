"""A node applies its own commands without decoding them only when that cannot be seen.

The node that encodes a command applies that command object itself (no pickle round
trip) when its arguments are immutable. A caller who mutates a mutable argument during
or after the call must still change no replica, the leader's and the caller's included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from cluster_helpers import free_port

import replobj
import replobj.statemachine
from replobj.command import Command

pytestmark = pytest.mark.anyio


SECRET = replobj.new_secret()
"""A random cluster secret for this module's nodes."""


@replobj.replicated
class Shelf:
    """Keeps whatever it is given, as given."""

    def __init__(self) -> None:
        self.items: dict[str, Any] = {}

    def put(self, key: str, value: Any) -> int:
        """Store ``value`` under ``key``; returns how many keys there are."""
        self.items[key] = value
        return len(self.items)

    @replobj.query
    def get(self, key: str) -> Any:
        """The value stored under ``key`` (the stored object itself)."""
        return self.items.get(key)


def _cluster(root: Path, size: int) -> tuple[dict[str, replobj.Node], dict[str, Any]]:
    addresses = {f"n{i}": f"127.0.0.1:{free_port()}" for i in range(size)}
    print(f"cluster addresses {addresses}, data under {root}")
    nodes = {
        node_id: replobj.Node(
            node_id,
            secret=SECRET,
            listen=address,
            peers=addresses,
            data_dir=root / node_id,
            election_timeout=0.4,
            heartbeat_interval=0.05,
        )
        for node_id, address in addresses.items()
    }
    proxies = {node_id: node.attach("shelf", Shelf()) for node_id, node in nodes.items()}
    return nodes, proxies


async def _wait_until(condition: Any, timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 - polling state the nodes expose
            await anyio.sleep(0.01)


async def test_mutating_an_argument_during_or_after_a_call_changes_no_replica(
    tmp_path: Path,
) -> None:
    nodes, proxies = _cluster(tmp_path, 3)
    async with anyio.create_task_group() as tasks:
        for node in nodes.values():
            await tasks.start(node.serve)
        leader = await nodes["n0"].wait_for_leader()
        shelf, node = proxies[leader], nodes[leader]

        after = ["kept"]
        assert await shelf.put("after", after) == 1
        after.append("changed after the call")

        during = {"state": "kept"}
        encoded = node.runtime.applied.index

        async def put_during() -> None:
            assert await shelf.put("during", during) == 2

        seq_before = node._next_seq
        tasks.start_soon(put_during)
        await _wait_until(lambda: node._next_seq > seq_before)
        during["state"] = "changed during the call"
        await _wait_until(lambda: node.runtime.applied.index > encoded)

        # "during" is the last entry so far (index 3, or 4 after another entry such as a
        # second leader's no-op): every member applies up to the leader's applied index.
        done = node.runtime.applied.index
        for node_id, member in nodes.items():
            await _wait_until(lambda m=member: m.statemachine.applied_index >= done)  # type: ignore[misc]
            stored = member.statemachine.objects["shelf"].items
            assert stored == {"after": ["kept"], "during": {"state": "kept"}}, node_id
            assert stored["after"] is not after
        for member in nodes.values():
            await member.aclose()


async def test_only_commands_with_immutable_arguments_skip_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[str] = []
    decode = replobj.statemachine.decode_commands

    def counting_decode(payload: bytes) -> tuple[Command, ...]:
        commands = decode(payload)
        decoded.extend(c.args[0] for c in commands if c.object_name == "shelf")
        return commands

    monkeypatch.setattr(replobj.statemachine, "decode_commands", counting_decode)
    nodes, proxies = _cluster(tmp_path, 1)
    node, shelf = nodes["n0"], proxies["n0"]
    async with anyio.create_task_group() as tasks:
        await tasks.start(node.serve)
        assert await shelf.put("n", (1, "two", b"3", None)) == 1
        assert await shelf.put("m", 7) == 2
        assert decoded == []
        assert await shelf.put("x", [1]) == 3
        assert decoded == ["x"]
        assert await shelf.get("n") == (1, "two", b"3", None)
        await node.aclose()


def test_the_kwargs_a_caller_passes_are_copied_into_the_command() -> None:
    node = replobj.Node("n0", secret=SECRET, listen=f"127.0.0.1:{free_port()}")
    node.attach("shelf", Shelf())
    kwargs: dict[str, Any] = {"key": "k", "value": 1}
    cmd, _ = node.new_command("shelf", "tests.Shelf", "put", (), kwargs)
    kwargs["value"] = 2
    assert cmd.kwargs == {"key": "k", "value": 1}
