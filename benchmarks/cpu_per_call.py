"""CPU time per command of a whole cluster in one process: a load-independent throughput figure.

Run from the repository root::

    .venv/bin/python benchmarks/cpu_per_call.py                      # this tree
    .venv/bin/python benchmarks/cpu_per_call.py --baseline /tmp/base  # and another tree

Three nodes (memory storage, TCP on loopback) run in one asyncio process; 1,000 tasks (or
``--in-flight``) call ``incr()`` on the leader, then on a follower. The figure is the
process's CPU time divided by the calls completed: unlike calls/s it hardly moves when
other jobs share the machine, so two trees compare well even on a busy one. ``--baseline``
runs the same measurement in a subprocess importing another source tree's ``replobj``,
alternating with this tree ``--rounds`` times.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio

import replobj


@replobj.replicated(name="bench.Counter")
class Counter:
    """The measured object."""

    def __init__(self) -> None:
        self.value = 0

    def incr(self, n: int = 1) -> int:
        """Add ``n``; returns the new value."""
        self.value += n
        return self.value


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def measure(where: str, in_flight: int, seconds: float) -> tuple[float, float]:
    """Calls/s and CPU µs per call with ``in_flight`` callers on the leader or a follower."""
    addresses = {f"n{i}": f"127.0.0.1:{_free_port()}" for i in range(3)}
    secret = replobj.new_secret()
    nodes = {
        n: replobj.Node(n, listen=a, peers=addresses, secret=secret) for n, a in addresses.items()
    }
    proxies = {n: node.attach("counter", Counter()) for n, node in nodes.items()}
    done = 0
    stop = False
    async with anyio.create_task_group() as tasks:
        for node in nodes.values():
            await tasks.start(node.serve)
        leader = await nodes["n0"].wait_for_leader()
        target = leader if where == "leader" else next(n for n in nodes if n != leader)
        proxy = proxies[target]

        async def caller() -> None:
            nonlocal done
            while not stop:
                await proxy.incr()
                done += 1

        async with anyio.create_task_group() as callers:
            for _ in range(in_flight):
                callers.start_soon(caller)
            await anyio.sleep(1.0)
            calls, wall, cpu = done, time.monotonic(), time.process_time()
            await anyio.sleep(seconds)
            calls, wall, cpu = done - calls, time.monotonic() - wall, time.process_time() - cpu
            stop = True
        for node in nodes.values():
            await node.aclose()
    return calls / wall, 1e6 * cpu / max(calls, 1)


def _run_tree(tree: Path | None, where: str, args: argparse.Namespace) -> str:
    command = [sys.executable, __file__, "--one", where, "--in-flight", str(args.in_flight)]
    command += ["--seconds", str(args.seconds)]
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree.resolve())
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def main() -> None:
    """Print one line per tree, row and round."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-flight", type=int, default=1000, help="concurrent callers")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per row")
    parser.add_argument("--rounds", type=int, default=2, help="repetitions of every row")
    parser.add_argument("--baseline", type=Path, help="another source tree to compare with")
    parser.add_argument("--one", choices=("leader", "follower"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        logging.disable(logging.CRITICAL)
        rate, cpu = anyio.run(measure, args.one, args.in_flight, args.seconds)
        print(f"{rate:,.0f} calls/s, {cpu:.1f} µs CPU per call")
        return
    trees: list[tuple[str, Path | None]] = [("this tree", None)]
    if args.baseline is not None:
        trees.append(("baseline", args.baseline))
    print(f"# 3 nodes in one process, x{args.in_flight}, {args.seconds:g} s per row")
    for round_ in range(1, args.rounds + 1):
        for where in ("leader", "follower"):
            for name, tree in trees:
                print(f"round {round_} {where:8} {name:9}: {_run_tree(tree, where, args)}")


if __name__ == "__main__":
    main()
