"""Helpers for transport integration tests: wait on conditions, collect messages."""

from __future__ import annotations

import socket
from collections.abc import Callable

import anyio

from replobj import new_secret
from replobj.raft.messages import Message
from replobj.secret import cluster_key
from replobj.transport.base import Transport

SECRET = new_secret()
"""A random cluster secret for this test run."""
KEY = cluster_key(SECRET.encode())
"""The key every transport derives from :data:`SECRET`."""


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port that was free on 127.0.0.1 a moment ago (bind port 0, read it back)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_until(condition: Callable[[], bool], what: str, within: float = 5.0) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` after ``within`` seconds."""
    with anyio.move_on_after(within):
        while not condition():  # noqa: ASYNC110 (counters have no event to wait on)
            await anyio.sleep(0.005)
        return
    raise AssertionError(f"timed out after {within}s waiting for {what}")


async def receive_n(transport: Transport, count: int, within: float = 5.0) -> list[Message]:
    """Receive exactly ``count`` messages or fail after ``within`` seconds."""
    got: list[Message] = []
    with anyio.move_on_after(within):
        while len(got) < count:
            got.append(await transport.receive())
        return got
    raise AssertionError(f"received {len(got)} of {count} messages within {within}s: {got}")


async def resend_until_received(
    sender: Transport, to: str, receiver: Transport, message: Message, within: float = 10.0
) -> Message:
    """Send ``message`` repeatedly (as Raft retransmits) until ``receiver`` gets one."""
    with anyio.move_on_after(within):
        while True:
            sender.send(to, message)
            with anyio.move_on_after(0.05):
                return await receiver.receive()
    raise AssertionError(f"{to} never received {message} within {within}s: {sender.stats}")
