"""Recording a real replobj cluster: concurrent clients on every member, history checked."""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

import replobj
from replobj import errors
from replobj.testing import HistoryRecorder, KeyValueModel, check_history

SECRET = replobj.new_secret()
"""A random cluster secret for this module's nodes."""


@replobj.replicated
class KV:
    """The key-value class the checker's :class:`KeyValueModel` describes."""

    def __init__(self) -> None:
        self.data: dict[str, int] = {}

    def put(self, key: str, value: int) -> None:
        """Store ``value`` under ``key``."""
        self.data[key] = value

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        self.data.pop(key, None)

    @replobj.query
    def get(self, key: str) -> int | None:
        """The value under ``key``, or ``None``."""
        return self.data.get(key)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def record_call(
    recorder: HistoryRecorder, client: int, name: str, argument: Any, call: Any
) -> None:
    """Invoke ``call`` and settle its record by what the outcome proves."""
    token = recorder.invoke(client, name, argument)
    try:
        output = await call
    except errors.CallTimeoutError:
        recorder.unknown(token)
    except errors.RaftRefusedError:
        recorder.fail(token)
    else:
        recorder.ok(token, output)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
async def test_history_of_a_three_node_cluster_is_linearizable(tmp_path: Path) -> None:
    seed = 11
    addresses = {f"n{i}": f"127.0.0.1:{free_port()}" for i in range(3)}
    print(f"seed {seed}, addresses {addresses}, data under {tmp_path}")
    nodes = {
        node_id: replobj.Node(
            node_id,
            secret=SECRET,
            listen=address,
            peers=addresses,
            data_dir=tmp_path / node_id,
            election_timeout=0.4,
            heartbeat_interval=0.05,
            call_timeout=5.0,
        )
        for node_id, address in addresses.items()
    }
    proxies = {node_id: node.attach("kv", KV()) for node_id, node in nodes.items()}
    recorder = HistoryRecorder()
    rng = random.Random(seed)

    async def client(client_id: int) -> None:
        kv = proxies[f"n{client_id % 3}"]
        for step in range(25):
            key = f"k{rng.randrange(3)}"
            roll = rng.random()
            if roll < 0.5:
                await record_call(recorder, client_id, "get", key, kv.get(key))
            elif roll < 0.9:
                value = client_id * 1000 + step
                await record_call(recorder, client_id, "put", (key, value), kv.put(key, value))
            else:
                await record_call(recorder, client_id, "delete", key, kv.delete(key))

    async with anyio.create_task_group() as tasks:
        for node in nodes.values():
            await tasks.start(node.serve)
        for node in nodes.values():
            await node.wait_for_leader(10)
        started = time.monotonic()
        async with anyio.create_task_group() as clients:
            for client_id in range(6):
                clients.start_soon(client, client_id)
        print(f"150 calls in {time.monotonic() - started:.2f} s")
        for node in nodes.values():
            await node.aclose()
    history = recorder.history()
    verdict = check_history(history, KeyValueModel())
    print(verdict.explain())
    assert len(history) >= 140
    assert verdict.ok
