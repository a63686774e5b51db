"""Local reads per second against a plain method call, on one node in this process.

Run ``.venv/bin/python benchmarks/local_reads.py`` (``PYTHONPATH=/tmp/base`` to measure
another source tree). Each figure is one caller looping for a second: ``await
box.get.local()`` on a started single-node cluster, ``await f()`` where ``f`` is a
coroutine returning the plain method's result (the floor of any awaitable call), and
the plain method call itself.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Awaitable, Callable

import anyio

import replobj


@replobj.replicated(name="bench.Box")
class Box:
    """One value."""

    def __init__(self) -> None:
        self.value = 0

    def put(self, value: int) -> None:
        """Set the value."""
        self.value = value

    @replobj.query
    def get(self) -> int:
        """The value."""
        return self.value


async def _rate(call: Callable[[], Awaitable[object]]) -> float:
    count, began = 0, time.perf_counter()
    end = began + 1.0
    while (now := time.perf_counter()) < end:
        for _ in range(1000):
            await call()
        count += 1000
    return count / (now - began)


async def main() -> None:
    """Print the three rates."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    node = replobj.Node("a", listen=f"127.0.0.1:{port}", secret=replobj.new_secret())
    box = node.attach("box", Box())
    plain = Box()

    async def wrapper() -> int:
        return plain.get()

    async with node:
        await node.wait_for_leader()
        print(f"await box.get.local(): {await _rate(box.get.local):,.0f}/s")
        print(f"await plain async wrapper: {await _rate(wrapper):,.0f}/s")
    count, began = 0, time.perf_counter()
    while (now := time.perf_counter()) < began + 1.0:
        for _ in range(1000):
            plain.get()
        count += 1000
    print(f"plain method call: {count / (now - began):,.0f}/s")


if __name__ == "__main__":
    anyio.run(main)
