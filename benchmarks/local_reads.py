"""Local reads per second against a plain method call, on one node in this process.

Run ``.venv/bin/python benchmarks/local_reads.py`` (``PYTHONPATH=/tmp/base`` to measure
another source tree; ``--backend trio`` for trio). Each figure is one caller looping for
a second on a started single-node cluster, bound once as a hot loop would, best of three
rounds (the figures of a round are measured one after the other, the rounds interleaved):

- ``box.get.local_now()``: the synchronous local read; the loop yields to the event loop
  once a millisecond, as a loop of them must (see ``docs/consistency.md``);
- ``f()`` where ``f`` is a plain Python function returning the plain method's result: the
  floor of any checked synchronous call (one frame more than the method);
- ``await box.get.local()``, and ``await f()`` where ``f`` is a coroutine returning the
  plain method's result (the floor of any awaitable call);
- the plain method call itself, and the ratio of each figure to it.
"""

from __future__ import annotations

import argparse
import socket
import time
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel

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


async def _sync_rate(call: Callable[[], object]) -> float:
    """Like :func:`_rate` for a plain call; yields once a millisecond."""
    count, began = 0, time.perf_counter()
    end, due = began + 1.0, began
    while (now := time.perf_counter()) < end:
        for _ in range(1000):
            call()
        count += 1000
        if now >= due:
            await anyio.lowlevel.checkpoint()
            due = time.perf_counter() + 0.001
    return count / (now - began)


async def _plain_rate(call: Callable[[], object]) -> float:
    """Like :func:`_rate` for a plain call that never yields."""
    count, began = 0, time.perf_counter()
    while (now := time.perf_counter()) < began + 1.0:
        for _ in range(1000):
            call()
        count += 1000
    return count / (now - began)


async def main() -> None:
    """Print the rates and their ratios to the plain method call."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    node = replobj.Node("a", listen=f"127.0.0.1:{port}", secret=replobj.new_secret())
    box = node.attach("box", Box())
    plain = Box()
    get = plain.get

    def wrapper() -> int:
        return get()

    async def async_wrapper() -> int:
        return get()

    figures: dict[str, Callable[[], Awaitable[float]]] = {
        "box.get.local_now()": lambda: _sync_rate(box.get.local_now),
        "plain Python wrapper f()": lambda: _sync_rate(wrapper),
        "await box.get.local()": lambda: _rate(box.get.local),
        "await plain async wrapper": lambda: _rate(async_wrapper),
        "plain method call": lambda: _plain_rate(get),
    }
    rates = dict.fromkeys(figures, 0.0)
    async with node:
        await node.wait_for_leader()
        for _ in range(3):
            for name, measure in figures.items():
                rates[name] = max(rates[name], await measure())
    base = rates["plain method call"]
    for name, rate in rates.items():
        print(f"{name:28} {rate:>14,.0f}/s  {rate / base:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    anyio.run(main, backend=parser.parse_args().backend)
